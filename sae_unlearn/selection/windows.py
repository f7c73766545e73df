"""Window maxima: each latent's maximum over every window of `window` tokens, per corpus.

A window is a span about the length of a question, never crossing sequences; maxima are
stored sparse (nonzero only). They estimate how often a latent would touch a question-sized
text, and calibrate per-latent thresholds: the activation a latent exceeds on at most a
given fraction of the windows of each benign corpus (retain, and retain_near when scored;
`select.threshold_rate`), for the `gated_clamp` mode.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from sae_unlearn.errors import UserError
from sae_unlearn.selection.stats import BENIGN_CORPORA, CORPORA, REQUIRED_CORPORA, CorpusStatistics

WINDOW_COLUMNS = ["corpus", "window", "latent", "value", "n_windows"]


class WindowMaxima:
    """Each latent's maximum over every window of `width` tokens of one cache file, sparse;
    `tokens` is the file's token table (`read_tokens`), whose rows `update` gets.

    Windows are (sequence, position // width); a row group may split a window, so maxima
    are merged at the end. Only nonzero maxima are kept: a TopK or JumpReLU SAE leaves
    most latents at 0 over a window, which keeps this at a few entries per token.
    """

    def __init__(self, tokens: pa.Table, width: int):
        seq = tokens.column("sequence_id").to_numpy().astype(np.int64)
        pos = tokens.column("position").to_numpy().astype(np.int64)
        keys = seq * (int(pos.max(initial=0)) // width + 1) + pos // width
        _, self.window_of_row = np.unique(keys, return_inverse=True)
        special = tokens.column("is_special").to_numpy(zero_copy_only=False)
        # Windows with at least one non-special token: the ones statistics can see.
        self.n_windows = int(len(np.unique(self.window_of_row[~special])))
        self.parts: list[pd.DataFrame] = []

    def update(self, f: torch.Tensor, rows: torch.Tensor) -> None:
        windows = torch.from_numpy(self.window_of_row[rows.cpu().numpy()])
        local, inverse = torch.unique(windows, return_inverse=True)
        maxima = torch.zeros(len(local), f.shape[1], dtype=f.dtype, device=f.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
            maxima.index_reduce_(0, inverse.to(f.device), f, "amax", include_self=True)
        w, latent = (maxima > 0).nonzero(as_tuple=True)
        self.parts.append(
            pd.DataFrame(
                {
                    "window": local[w.cpu()].numpy().astype(np.int32),
                    "latent": latent.cpu().numpy().astype(np.int32),
                    "value": maxima[w, latent].float().cpu().numpy(),
                }
            )
        )

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"window": [], "latent": [], "value": []})
        frame = pd.concat(self.parts, ignore_index=True)
        return frame.groupby(["window", "latent"], as_index=False, sort=True)["value"].max()


def window_table(*corpora: CorpusStatistics) -> pd.DataFrame:
    """The corpora's nonzero window maxima in one long table (WINDOW_COLUMNS)."""
    parts = []
    for stats in corpora:
        frame = stats.windows if stats.windows is not None else pd.DataFrame()
        frame = frame.reindex(columns=["window", "latent", "value"]).copy()
        frame.insert(0, "corpus", stats.corpus)
        frame["n_windows"] = np.int64(stats.n_windows)
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True)
    return table.astype(
        {"window": "int32", "latent": "int32", "value": "float32", "n_windows": "int64"}
    )


def window_statistics(
    windows: pd.DataFrame,
    d_sae: int,
    threshold_rate: float | None,
    source: str = "the window maxima",
) -> pd.DataFrame:
    """Per latent: the calibrated `threshold` and the fraction of each corpus's windows
    whose maximum exceeds it (`forget_window_freq`, `retain_window_freq`, and
    `retain_near_window_freq` when the table has retain_near windows).

    On one benign corpus, the calibrated threshold is the smallest activation that the
    latent's window maximum exceeds on at most `threshold_rate` of its windows: the (m+1)-th
    largest window maximum with m = floor(rate * n_windows), or 0 when it exceeds 0 on no
    more than m windows (`threshold_retain`, `threshold_retain_near`). A latent's `threshold`
    is the stricter (larger) of them, so it holds against each benign corpus.
    `threshold_rate=None` gives threshold 0 everywhere.
    """
    missing = [c for c in WINDOW_COLUMNS if c not in windows.columns]
    if missing:
        raise UserError(
            f"{source} lacks columns {missing}; rerun `sae-unlearn score` to rewrite it"
        )
    counts = {}
    for corpus in CORPORA:
        n = windows.loc[windows["corpus"] == corpus, "n_windows"]
        if corpus not in REQUIRED_CORPORA and len(n) == 0:
            continue  # an optional corpus that was not scored
        if len(n) == 0 or int(n.iloc[0]) < 1:
            raise UserError(f"{source} has no {corpus} windows; rerun `sae-unlearn score`")
        counts[corpus] = int(n.iloc[0])
    bad = windows["latent"][(windows["latent"] < 0) | (windows["latent"] >= d_sae)]
    if len(bad):
        raise UserError(
            f"{source}: latents {bad.head(5).tolist()} out of range for {d_sae} latents; "
            "rerun `sae-unlearn score` with this SAE"
        )
    out = pd.DataFrame({"latent": np.arange(d_sae, dtype=np.int64)})
    benign = [c for c in BENIGN_CORPORA if c in counts]
    for corpus in benign:
        out[f"threshold_{corpus}"] = calibrated_thresholds(
            windows[windows["corpus"] == corpus], d_sae, threshold_rate, counts[corpus]
        )
    thresholds = out[[f"threshold_{c}" for c in benign]].max(axis=1).to_numpy()
    out.insert(1, "threshold", thresholds)
    for corpus in counts:
        frame = windows[windows["corpus"] == corpus]
        above = frame["value"].to_numpy() > thresholds[frame["latent"].to_numpy()]
        hits = np.bincount(frame["latent"].to_numpy()[above], minlength=d_sae)
        out[f"{corpus}_window_freq"] = hits / counts[corpus]
    return out


def calibrated_thresholds(
    windows: pd.DataFrame, d_sae: int, rate: float | None, n_windows: int
) -> np.ndarray:
    """Per latent, the activation its window maximum exceeds on at most `rate` of the
    `n_windows` windows of one corpus (`windows`: that corpus's nonzero maxima)."""
    thresholds = np.zeros(d_sae, dtype=np.float64)
    if rate is None:
        return thresholds
    m = int(np.floor(rate * n_windows))
    ranked = windows.sort_values(["latent", "value"], ascending=[True, False])
    nth = ranked.groupby("latent").nth(m)  # the (m+1)-th largest, where it exists
    thresholds[nth["latent"].to_numpy()] = nth["value"].to_numpy()
    return thresholds
