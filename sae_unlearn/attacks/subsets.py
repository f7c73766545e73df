"""Seeded question subsets, so every attack scores and optimises over the same questions;
the dev half as a pool (shots, training) and the test half scored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_unlearn.data.splits import question_splits
from sae_unlearn.errors import UserError


def deterministic_subset(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """`n` rows drawn with `seed`, kept in their original order (all rows for None)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n < 1:
        raise UserError(f"subset size must be >= 1, got {n}")
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def pool_and_scored(
    forget: pd.DataFrame, n_eval: int | None, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dev half (the shot pool) and a seeded subset of `n_eval` of the test half."""
    halves = pd.Series(question_splits(forget["question"]), index=forget.index)
    pool = forget[halves == "dev"].reset_index(drop=True)
    test = forget[halves == "test"].reset_index(drop=True)
    if len(test) == 0:
        raise UserError("the attack scores the test half, but no forget question is in it")
    return pool, deterministic_subset(test, n_eval, seed)
