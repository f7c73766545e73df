"""Few-shot attack: solved retain questions in front of every forget question."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import KeptRows
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.steering import ClampHook


def draw_shots(
    pool: pd.DataFrame, k: int, seed: int, pool_name: str = "retain"
) -> pd.DataFrame | None:
    """The first `k` of one seeded permutation of `pool`, so shot sets are nested across k
    (the 16-shot prompt extends the 4-shot one) and differences between k are not noise
    from redrawing. `None` for k = 0."""
    if k < 0:
        raise UserError(f"shot counts (attack.fewshot.k, attack.icl.k) must be >= 0, got {k}")
    if k == 0:
        return None
    if k > len(pool):
        raise UserError(
            f"{k}-shot needs {k} {pool_name} questions but only {len(pool)} exist. Fix: "
            "use fewer shots"
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool.iloc[order[:k]].reset_index(drop=True)


def fewshot_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    pool: pd.DataFrame,
    ks: Sequence[int],
    seed: int,
    cfg: EvalConfig,
    hooks: dict[str, ClampHook | None],
    max_tokens: int = 512,
    gates: bool = False,
    pool_name: str = "retain",
    rows: KeptRows | None = None,
) -> dict[int, dict[str, pd.DataFrame]]:
    """Per k and per named model (its hook, or None), the results on `questions` with the
    same k shots from `pool` in front of each (packed scoring, rows of `max_tokens`); with
    `gates`, a steered model's results say where its gate opened. `rows`: where the unsteered
    scoring keeps each k's rows below the hook, and the steered one starts (`KeptRows`)."""
    frames: dict[int, dict[str, pd.DataFrame]] = {}
    for k in ks:
        shots = draw_shots(pool, k, seed, pool_name)
        frames[k] = {}
        for name, hook in hooks.items():
            with maybe_steer(model, hook):
                frames[k][name] = evaluate_questions(
                    model,
                    tokenizer,
                    questions,
                    cfg,
                    fewshot=shots,
                    packed=True,
                    max_tokens=max_tokens,
                    gates=hook if gates else None,
                    residuals=rows.for_run(f"k={k}", hook is not None) if rows else None,
                )
    return frames
