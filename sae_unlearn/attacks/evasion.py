"""Evasion: the forget questions as a user might type them, to slip past the gate.

Per perturbation (`perturb.PERTURBATIONS`) and model: accuracy, and for the steered model
the share of prompts on which the gate opened (the hook's trace, as evaluation records
it). `none` is the question as written, scored alongside as the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, KeptRows, add_setting
from sae_unlearn.attacks.perturb import PERTURBATIONS, perturb_question
from sae_unlearn.attacks.reference import no_attack
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.steering import ClampHook

N_EXAMPLES = 2  # perturbed questions kept per perturbation, to show what each does


@dataclass(frozen=True)
class EvasionConfig:
    perturbations: tuple[str, ...] = PERTURBATIONS
    noise_rate: float = 0.1  # char_noise: share of letters swapped or dropped
    min_split: int = 6  # split_words: words of at least this many letters
    filler_words: int = 60  # filler: words of benign text before the question
    seed: int = 0


def check_perturbations(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise UserError(
            f"attack.evasion.perturbations: unknown {unknown}. Fix: choose from "
            f"{list(PERTURBATIONS)}"
        )


def perturbed(
    questions: pd.DataFrame,
    kind: str,
    cfg: EvasionConfig,
    filler: str,
    synonyms: Mapping[str, str],
) -> pd.DataFrame:
    """`questions` with each question's text under perturbation `kind`."""
    out = questions.copy()
    out["question"] = [
        perturb_question(
            q,
            kind,
            seed=cfg.seed,
            noise_rate=cfg.noise_rate,
            min_split=cfg.min_split,
            filler=filler,
            synonyms=synonyms,
        )
        for q in questions["question"]
    ]
    return out


def evasion_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: EvasionConfig,
    eval_cfg: EvalConfig,
    filler: str,
    synonyms: Mapping[str, str],
    max_tokens: int = 512,
    log: Callable[[str], None] = print,
    reference: Mapping | None = None,
    rows: KeptRows | None = None,
) -> FamilyOutputs:
    """Every perturbation of `questions`, scored by every model in `hooks`; `reference`
    (`reference.no_attack`) gives the `none` results instead of scoring them here; `rows`:
    where the unsteered scoring keeps each perturbation's rows and the steered starts."""
    check_perturbations(cfg.perturbations)
    out = FamilyOutputs()
    examples: dict[str, list[str]] = {}
    for kind in ("none", *cfg.perturbations):
        frame = questions if kind == "none" else perturbed(questions, kind, cfg, filler, synonyms)
        template = "qa" if kind == "template" else "lm-eval"
        examples[kind] = frame["question"].head(N_EXAMPLES).tolist()
        for name, hook in hooks.items():
            given = no_attack(reference, name) if kind == "none" else None
            with maybe_steer(model, hook):
                scored = (
                    given
                    if given is not None
                    else evaluate_questions(
                        model,
                        tokenizer,
                        frame,
                        eval_cfg,
                        max_tokens=max_tokens,
                        gates=hook,
                        template=template,
                        residuals=rows.for_run(kind, hook is not None) if rows else None,
                    )
                )
            fig = add_setting(out, name, kind, scored, eval_cfg.bootstrap, eval_cfg.seed)
            gate = "" if fig["gate_share"] is None else f", gate open {fig['gate_share']:.2f}"
            log(f"evasion {kind} {name}: acc {fig['acc']:.3f}{gate}")
    out.metrics["n"] = len(questions)
    out.records["examples"] = examples
    return out
