"""Evaluating question sets, unsteered or with the clamp hook attached."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.data.splits import question_splits
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.contamination import CONTAMINATED
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from sae_unlearn.evaluation.gates import GateRecorder, gate_columns, gate_summary
from sae_unlearn.evaluation.known import (
    baseline_known_summary,
    known_correct_summary,
    known_under_all_orderings,
    permuted_questions,
)
from sae_unlearn.evaluation.metrics import role_summary
from sae_unlearn.evaluation.requests import (
    Request,
    build_requests,
    encode_requests,
    per_request,
)
from sae_unlearn.evaluation.residuals import RowResiduals
from sae_unlearn.evaluation.results import results_frame
from sae_unlearn.evaluation.scoring import Unsteered, continuation_logprobs, score_sequences
from sae_unlearn.models import hidden_size
from sae_unlearn.saes import check_sae_matches_model, load_sae_dir, sae_dir_checked
from sae_unlearn.saes.identity import check_sae_identity, sae_identity
from sae_unlearn.steering import ClampConfig, ClampHook, read_clamp_yaml, steer


def checked_clamp(sae_dir: Path, clamp: Path) -> ClampConfig:
    """A clamp config YAML, refused unless `sae_dir` holds the SAE it was made for; cheap
    (no model), so stages call it before loading anything."""
    clamp_cfg = read_clamp_yaml(clamp)
    check_sae_identity(clamp_cfg.sae, sae_identity(sae_dir_checked(sae_dir)), str(clamp))
    return clamp_cfg


def load_clamp_hook(model: nn.Module, sae_dir: Path, clamp_cfg: ClampConfig) -> ClampHook:
    """The clamp hook of a clamp config (from `checked_clamp`) on the SAE in `sae_dir`,
    checked against `model`."""
    sae = load_sae_dir(sae_dir)
    check_sae_matches_model(sae, hidden_size(model), sae_dir)
    return ClampHook(sae, clamp_cfg)


def maybe_steer(model: nn.Module, hook: ClampHook | None):
    """`steer(model, hook)`, or nothing for the unsteered baseline."""
    return steer(model, hook) if hook is not None else nullcontext()


def evaluate_questions(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    cfg: EvalConfig,
    fewshot: pd.DataFrame | None = None,
    suffix: str = "",
    progress: bool = False,
    packed: bool = True,
    max_tokens: int = 512,
    gates: ClampHook | None = None,
    template: str = "lm-eval",
    baseline: tuple[pd.DataFrame, str] | None = None,
    residuals: RowResiduals | None = None,
) -> pd.DataFrame:
    """Per-question results: log-likelihoods, chosen answers, correctness (acc, acc_norm).

    Packed by default (`score_sequences`, rows of up to `max_tokens` tokens): a question's
    choices share its context, which runs once, so evaluation costs about a third of dense
    scoring of every (question, choice) (`packed=False`: padded batches of
    `cfg.batch_size`, as lm-eval scores). With `gates` (a hook attached with `steer`), where
    its gate opened: `evaluation.gates.GATE_COLUMNS`. `template`: `prompts.TEMPLATES`.
    `baseline` (with `gates`, packed): the unsteered model's per-question results of these
    questions and where they came from; a choice the hook edits nothing for takes its
    log-likelihood from them instead of running the blocks after the hook's.
    `residuals` (packed): empty, filled with each packed row's residual stream after
    `residuals.block` (the unsteered model's: no hook may sit at or below it); filled by an
    earlier scoring of the same rows, where the rows start (a steered one skips the blocks
    up to it: below its hook they compute what they did unsteered).
    """
    requests = build_requests(questions, cfg.format, fewshot, suffix, template)
    pairs = encode_requests(tokenizer, requests)
    recorder = GateRecorder(gates, len(pairs)) if gates is not None else None
    if packed:
        unsteered = None
        if baseline is not None and gates is not None:
            unsteered = Unsteered(choice_logliks(baseline[0], requests, baseline[1]), baseline[1])
        filled = residuals is not None and bool(residuals.tokens)
        scores = score_sequences(
            model,
            pairs,
            max_tokens=max_tokens,
            progress=progress,
            recorder=recorder,
            unsteered=unsteered,
            keep=None if filled else residuals,
            start=residuals if filled else None,
        )
    else:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        scores = continuation_logprobs(
            model, pairs, pad, cfg.batch_size, progress, recorder=recorder
        )
    loglik = per_request(requests, [score for score, _ in scores])
    frame = results_frame(questions, requests, loglik)
    if recorder is not None:
        gate = gate_columns(recorder, requests, pairs, tokenizer)
        frame["gate_opened"] = gate["gate_opened"]
        frame["gate_position"] = pd.array(gate["gate_position"], dtype="Int64")
        frame["gate_token"] = pd.array(gate["gate_token"], dtype="string")
    return frame


def choice_logliks(frame: pd.DataFrame, requests: Sequence[Request], source: str) -> list[float]:
    """Per-question results' log-likelihoods, one per (question, choice) in request order."""
    out: list[float] = []
    for row, (loglik, request) in enumerate(zip(frame["loglik"], requests, strict=True), 1):
        if len(loglik) != len(request.continuations):
            raise UserError(
                f"{source} row {row} has {len(loglik)} log-likelihoods for a question of "
                f"{len(request.continuations)} choices. Fix: rerun the baseline evaluation"
            )
        out.extend(float(x) for x in loglik)
    return out


def evaluate_sets(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sets: dict[str, pd.DataFrame],
    cfg: EvalConfig,
    hook: ClampHook | None = None,
    progress: bool = False,
    baseline: dict[str, tuple[pd.DataFrame, str]] | None = None,
    residuals: dict[str, RowResiduals] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Per-question results of each named set (with each question's `split`, and where the
    `hook`'s gate opened), and the metrics: the format and each set's accuracy summary with
    its dev and test halves (and, steered, how often the gate opened: `gate`). `baseline`
    (role -> the unsteered model's per-question results of that set, checked to be of its
    questions, and their source) spares the work for questions the hook leaves alone.
    `residuals` (role -> `RowResiduals`, `evaluate_questions`): empty ones are filled (the
    baseline), filled ones are where each set's rows start (steered)."""
    results = {}
    for role, questions in sets.items():
        with maybe_steer(model, hook):
            frame = evaluate_questions(
                model,
                tokenizer,
                questions,
                cfg,
                progress=progress,
                gates=hook,
                baseline=(baseline or {}).get(role),
                residuals=(residuals or {}).get(role),
            )
        # A contaminated question keeps the half of the question it repeats.
        if "original_question" in questions:
            frame["original_question"] = questions["original_question"].tolist()
        frame["split"] = question_splits(frame.get("original_question", frame["question"]))
        results[role] = frame
    metrics: dict = {"format": cfg.format}
    for role, frame in results.items():
        metrics[role] = role_summary(frame, cfg.bootstrap, cfg.seed)
        metrics[role]["fingerprint"] = question_fingerprint(sets[role])
        if "gate_opened" in frame:
            metrics[role]["gate"] = gate_summary(frame)
    return results, metrics


def add_baseline_known(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sets: dict[str, pd.DataFrame],
    results: dict[str, pd.DataFrame],
    metrics: dict,
    cfg: EvalConfig,
    progress: bool = False,
) -> None:
    """Mark the questions the unsteered model knows (a `known` column in `results`) and count
    them in `metrics[role]["known_correct"]`: cloze, correct as scored; letter, correct under
    all 24 orderings of the choices (24 times the scoring, letter format only). A
    contaminated question is known when the question it repeats is."""
    for role, frame in _sources_first(results):
        source = CONTAMINATED.get(role)
        if source in results:
            known = results[source]["known"].to_numpy(bool)
        elif cfg.format == "letter":
            permuted = permuted_questions(sets[role])
            scored = evaluate_questions(model, tokenizer, permuted, cfg, progress=progress)
            known = known_under_all_orderings(scored, len(frame))
        else:
            known = frame["correct"].to_numpy(bool)
        frame["known"] = known
        metrics[role]["known_correct"] = baseline_known_summary(known)


def _sources_first(results: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
    """The roles of `results`, every contaminated role after the others."""
    return sorted(results.items(), key=lambda item: item[0] in CONTAMINATED)


def check_baseline_results(baseline: pd.DataFrame, steered: pd.DataFrame, source: str) -> None:
    """The baseline's per-question results must be of the same questions, in the same order."""
    if "known" not in baseline.columns:
        raise UserError(f"{source} has no `known` column; rerun evaluate-baseline")
    if baseline["question"].tolist() != steered["question"].tolist():
        rows = [
            i + 1
            for i, (a, b) in enumerate(zip(baseline["question"], steered["question"], strict=False))
            if a != b
        ]
        where = f"first different row {rows[0]}" if rows else "different row counts"
        raise UserError(
            f"{source} holds {len(baseline)} results for other questions than the "
            f"{len(steered)} scored now ({where}); rerun evaluate-baseline"
        )


def add_steered_known(
    results: dict[str, pd.DataFrame],
    baseline_results: dict[str, tuple[pd.DataFrame, str]],
    metrics: dict,
    cfg: EvalConfig,
) -> None:
    """SAEBench's view: each role's steered accuracy on the questions the baseline knows
    (`baseline_results`: role -> (the baseline's per-question results, where they came from))."""
    for role, frame in results.items():
        if role not in baseline_results:
            continue
        baseline, source = baseline_results[role]
        check_baseline_results(baseline, frame, source)
        known = baseline["known"].to_numpy(bool)
        metrics[role]["known_correct"] = known_correct_summary(
            frame["correct"].to_numpy(bool), known, cfg.bootstrap, cfg.seed
        )


def check_baseline_format(baseline: dict, fmt: str, source: str) -> None:
    """Alignment compares accuracies, so the baseline must be scored in the same format."""
    if baseline.get("format") != fmt:
        raise UserError(
            f"{source} was scored in {baseline.get('format')!r} format, not {fmt!r}; "
            "rerun evaluate-baseline"
        )
