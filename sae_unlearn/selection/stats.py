"""Per-latent statistics of a corpus, accumulated batch by batch, and their table.

Per latent, special tokens excluded: `freq` (fraction of tokens with activation > 0),
`mean` (over all tokens, zeros included), `max`, and the N highest activations with their
cache rows (a running top-N, so memory stays flat), from which contexts are decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sae_unlearn.activations.schema import CORPORA, REQUIRED_CORPORA
from sae_unlearn.errors import UserError

# The benign corpora: latents are filtered and thresholds calibrated against each of them.
BENIGN_CORPORA = ("retain", "retain_near")
STAT_COLUMNS = [
    "latent",
    "forget_freq",
    "retain_freq",
    "forget_mean",
    "retain_mean",
    "forget_max",
    "retain_max",
]
# Present when the retain_near corpus was cached and scored.
NEAR_STAT_COLUMNS = ["retain_near_freq", "retain_near_mean", "retain_near_max"]


def stat_columns(stats: pd.DataFrame) -> list[str]:
    """The statistics columns of a table: STAT_COLUMNS, and retain_near's when present."""
    return STAT_COLUMNS + [c for c in NEAR_STAT_COLUMNS if c in stats.columns]


@dataclass
class CorpusStatistics:
    """Per-latent statistics of one corpus; `top_rows` index into the cache file's rows."""

    corpus: str
    n_tokens: int
    freq: torch.Tensor  # [d_sae] float64
    mean: torch.Tensor  # [d_sae] float64
    max: torch.Tensor  # [d_sae] float32
    top_values: torch.Tensor  # [N, d_sae] descending; 0 where fewer than N tokens fired
    top_rows: torch.Tensor  # [N, d_sae] int64; -1 where empty
    windows: pd.DataFrame | None = None  # window, latent, value: nonzero window maxima
    n_windows: int = 0


class LatentAccumulator:
    """Running firing counts, sums, maxima and top-N activations of every latent."""

    def __init__(self, d_sae: int, n_top: int, device: torch.device):
        self.n = 0
        self.fires = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.total = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.max = torch.full((d_sae,), -math.inf, device=device)
        # Initialised at 0, not -inf: only tokens where a latent fires are contexts.
        self.top_values = torch.zeros(n_top, d_sae, device=device)
        self.top_rows = torch.full((n_top, d_sae), -1, dtype=torch.int64, device=device)

    def update(self, f: torch.Tensor, rows: torch.Tensor) -> None:
        f = f.float()
        self.n += len(f)
        self.fires += (f > 0).sum(0)
        # A float32 sum per batch, accumulated in float64: a float64 copy of the batch
        # would double its memory for no meaningful gain.
        self.total += f.sum(0).double()
        batch_max = f.amax(0)
        self.max = torch.maximum(self.max, batch_max)
        n_top = len(self.top_values)
        if n_top == 0:
            return
        # Only latents whose batch maximum beats their current N-th best can change,
        # which after the first batches is a small fraction of them.
        cols = (batch_max > self.top_values[-1]).nonzero().squeeze(1)
        if len(cols) == 0:
            return
        old_rows = self.top_rows[:, cols]
        best = torch.cat([self.top_values[:, cols], f[:, cols]]).topk(n_top, dim=0)
        # Indices below n_top point into the old top list, the rest into this batch; mapped
        # without materialising a [batch, latents] int64 table of row ids.
        idx = best.indices
        from_old = old_rows.gather(0, idx.clamp(max=n_top - 1))
        from_batch = rows[(idx - n_top).clamp(min=0)]
        self.top_values[:, cols] = best.values
        self.top_rows[:, cols] = torch.where(idx < n_top, from_old, from_batch)

    def result(self, corpus: str) -> CorpusStatistics:
        n = self.n
        top_rows = torch.where(self.top_values > 0, self.top_rows, -1)
        return CorpusStatistics(
            corpus=corpus,
            n_tokens=n,
            freq=(self.fires.double() / n).cpu(),
            mean=(self.total / n).cpu(),
            max=self.max.cpu(),
            top_values=torch.where(top_rows >= 0, self.top_values, 0.0).cpu(),
            top_rows=top_rows.cpu(),
        )


def latent_table(*corpora: CorpusStatistics) -> pd.DataFrame:
    """One row per latent: frequency, mean and max on each corpus given (forget and retain,
    and retain_near when given), `{corpus}_{stat}`, in STAT_COLUMNS order."""
    by_name = {s.corpus: s for s in corpora}
    missing = [c for c in REQUIRED_CORPORA if c not in by_name]
    if missing:
        raise UserError(f"latent statistics need the corpora {list(REQUIRED_CORPORA)}: {missing}")
    order = [c for c in CORPORA if c in by_name]
    columns: dict[str, np.ndarray] = {
        "latent": np.arange(len(by_name["forget"].freq), dtype=np.int64)
    }
    for stat in ("freq", "mean", "max"):
        for corpus in order:
            values = getattr(by_name[corpus], stat).numpy()
            columns[f"{corpus}_{stat}"] = values.astype(np.float64) if stat == "max" else values
    table = pd.DataFrame(columns)
    return table[["latent"] + [c for c in table.columns if c != "latent"]]


def validate_statistics(stats: pd.DataFrame, source: str = "the latent statistics") -> None:
    """Fail clearly on a statistics table that `score` did not write (or an old one)."""
    missing = [c for c in STAT_COLUMNS if c not in stats.columns]
    if missing:
        raise UserError(
            f"{source} lacks columns {missing} (has {list(stats.columns)}); "
            "rerun `sae-unlearn score` to rewrite it"
        )
    if len(stats) == 0:
        raise UserError(f"{source} has no latents; rerun `sae-unlearn score`")
    latents = stats["latent"]
    if not pd.api.types.is_integer_dtype(latents):
        raise UserError(f"{source}: column `latent` must hold integers, not {latents.dtype}")
    bad = latents[(latents < 0) | (latents >= len(stats))]
    if len(bad) or latents.duplicated().any():
        shown = bad.head(5).tolist() if len(bad) else latents[latents.duplicated()].head(5).tolist()
        raise UserError(
            f"{source}: latents out of range or repeated (e.g. {shown}); expected each of "
            f"0..{len(stats) - 1} once; rerun `sae-unlearn score`"
        )
    values = stats[stat_columns(stats)[1:]]
    if values.isna().any().any():
        raise UserError(f"{source} has missing (NaN) statistics; rerun `sae-unlearn score`")
    freqs = stats[[c for c in stat_columns(stats) if c.endswith("_freq")]]
    if ((freqs < 0) | (freqs > 1)).any().any():
        raise UserError(f"{source}: frequencies must lie in [0, 1]; rerun `sae-unlearn score`")
