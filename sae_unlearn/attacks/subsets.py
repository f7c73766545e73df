"""Seeded question subsets, so every attack scores and optimises over the same questions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_unlearn.errors import UserError


def deterministic_subset(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """`n` rows drawn with `seed`, kept in their original order (all rows for None)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n < 1:
        raise UserError(f"subset size must be >= 1, got {n}")
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[keep].reset_index(drop=True)
