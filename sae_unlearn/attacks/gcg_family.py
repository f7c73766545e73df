"""The GCG family: one universal suffix per model, optimised over a few dev-half forget
questions (`n_questions`) and scored on the test half, so every scored question is held out.

Per model: `none` (the questions unattacked) and `suffix` (with the found suffix), each with
its 95% interval and the gate share; the budget curve (accuracy with the suffix GCG held
after each `eval_every` steps; step 0 is no suffix), the losses, and with `per_question` the
target questions answered with a suffix of their own beside the universal one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial

import numpy as np
import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, add_setting
from sae_unlearn.attacks.gcg import GCGConfig, GCGResult, run_gcg
from sae_unlearn.attacks.gcg_tokens import allowed_token_mask, gcg_prompts
from sae_unlearn.attacks.reference import unattacked
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.steering import ClampHook


@dataclass(frozen=True)
class GCGAttackConfig:
    search: GCGConfig = field(default_factory=GCGConfig)  # the optimiser (nanoGCG's knobs)
    n_questions: int = 3  # dev-half forget questions one suffix is optimised over
    eval_every: int = 8  # the budget curve: accuracy with the suffix every this many steps
    per_question: bool = False  # also one suffix per target question (n_questions runs)
    seed: int = 0


class _Scorer:
    """Scores the test-half questions under one model, each suffix once."""

    def __init__(self, model, tokenizer, scored, eval_cfg, max_tokens, hook) -> None:
        self.args = (model, tokenizer)
        self.scored, self.eval_cfg, self.max_tokens, self.hook = scored, eval_cfg, max_tokens, hook
        self.by_suffix: dict[str, pd.DataFrame] = {}

    def __call__(self, suffix: str, questions: pd.DataFrame | None = None) -> pd.DataFrame:
        if questions is not None:
            return self._score(questions, suffix)
        if suffix not in self.by_suffix:
            self.by_suffix[suffix] = self._score(self.scored, suffix)
        return self.by_suffix[suffix]

    def _score(self, questions: pd.DataFrame, suffix: str) -> pd.DataFrame:
        return evaluate_questions(
            *self.args,
            questions,
            self.eval_cfg,
            suffix=suffix,
            packed=True,
            max_tokens=self.max_tokens,
            gates=self.hook,
        )


def budget_curve(result: GCGResult, every: int, score: Callable[[str], pd.DataFrame]) -> dict:
    """Accuracy with the suffix GCG held after 0, `every`, 2 x `every`, ... steps: what a
    smaller budget would have found. Step 0 is no suffix (nothing optimised yet); a step
    that found no candidate holds "", which is no suffix too."""
    steps = len(result.losses)
    suffixes = {0: ""}
    suffixes.update({s: result.strings[s - 1] for s in range(max(1, every), steps + 1, every)})
    return {str(s): float(score(suffix)["correct"].mean()) for s, suffix in suffixes.items()}


def gcg_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pool: pd.DataFrame,
    scored: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: GCGAttackConfig,
    eval_cfg: EvalConfig,
    max_tokens: int = 512,
    log: Callable[[str], None] = print,
    reference: Mapping | None = None,
) -> FamilyOutputs:
    """Per model in `hooks`: a suffix optimised over `n_questions` of `pool` (the dev half),
    scored on `scored` (the test half); `reference` (`reference.no_attack`) gives the
    unattacked results instead of scoring them here."""
    targets = deterministic_subset(pool, cfg.n_questions, cfg.seed + 1)
    prompts = gcg_prompts(tokenizer, targets, eval_cfg.format)
    vocab = model.get_input_embeddings().num_embeddings
    allowed = allowed_token_mask(tokenizer, vocab, cfg.search.allow_non_ascii)
    out = FamilyOutputs()
    search, found, losses, per_step = {}, {}, {}, {}
    for name, hook in hooks.items():
        score = _Scorer(model, tokenizer, scored, eval_cfg, max_tokens, hook)
        with maybe_steer(model, hook):
            score.by_suffix[""] = unattacked(reference, name, partial(score, ""))
            add_setting(out, name, "none", score(""), eval_cfg.bootstrap, eval_cfg.seed)
            t0 = time.perf_counter()
            result = run_gcg(model, tokenizer, prompts, cfg.search, allowed, progress=True)
            per_step[name] = (time.perf_counter() - t0) / max(1, len(result.losses))
            frame = score(result.best_string)
            fig = add_setting(out, name, "suffix", frame, eval_cfg.bootstrap, eval_cfg.seed)
            search[name] = {
                "init_loss": result.init_loss,
                "final_loss": result.best_loss,
                "steps": len(result.losses),
                "acc_by_step": budget_curve(result, cfg.eval_every, score),
                **_per_question(model, tokenizer, targets, prompts, allowed, result, cfg, score),
            }
        log(
            f"GCG {name}: loss {result.init_loss:.3f} -> {result.best_loss:.3f}, acc "
            f"{out.metrics[name]['none']['acc']:.3f} -> {fig['acc']:.3f} with suffix "
            f"{result.best_string!r}"
        )
        found[name] = {
            "suffix": result.best_string,
            "token_ids": result.best_ids,
            "loss": result.best_loss,
            "init_loss": result.init_loss,
            "candidates_per_step": result.n_candidates,
        }
        losses[name] = [result.init_loss, *result.losses]  # index = step
    out.metrics.update(n=len(scored), n_targets=len(targets), search=search)
    out.records["suffixes"] = {
        "gcg_config": {f.name: getattr(cfg.search, f.name) for f in fields(cfg.search)},
        "target_questions": targets["question"].tolist(),
        "suffixes": found,
    }
    out.records["losses"] = losses
    out.run_info["gcg_seconds_per_step"] = {k: round(v, 2) for k, v in per_step.items()}
    return out


def _per_question(model, tokenizer, targets, prompts, allowed, universal, cfg, score) -> dict:
    """With `per_question`: the target questions answered with their own suffix (one GCG
    run each, the same budget) beside those answered with the shared one."""
    if not cfg.per_question:
        return {}
    own = []
    for i in range(len(targets)):
        result = run_gcg(model, tokenizer, [prompts[i]], cfg.search, allowed)
        own.append(bool(score(result.best_string, targets.iloc[[i]])["correct"].iloc[0]))
    shared = score(universal.best_string, targets)["correct"]
    return {
        "targets_acc_per_question": float(np.mean(own)),
        "targets_acc_universal": float(shared.mean()),
    }
