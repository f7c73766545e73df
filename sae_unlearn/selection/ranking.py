"""The selection rule (Farrell et al. 2024; SAEBench unlearning eval): drop latents whose
frequency on a benign corpus (retain, and retain_near when scored) exceeds a threshold, rank
the rest by a score, take the top k. With retain_near, CRISP's rule (Ashuach et al. 2025)
contrasts forget with in-domain benign text: the `crisp` score and `min_near_ratio`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_unlearn.errors import UserError
from sae_unlearn.selection.config import SelectConfig, check_score_name
from sae_unlearn.selection.stats import BENIGN_CORPORA, stat_columns, validate_statistics
from sae_unlearn.selection.windows import window_statistics


def compute_score(stats: pd.DataFrame, name: str, eps: float = 1e-4) -> pd.Series:
    """The score `name` (see SCORES) of every latent; higher means more forget-specific.
    `forget_window_freq` needs the columns of `window_statistics` merged in."""
    check_score_name(name, "score")
    if name == "forget_window_freq":
        if name not in stats.columns:
            raise UserError("the forget_window_freq score needs the window statistics")
        return stats[name].astype(float)
    forget = stats["forget_freq"].astype(float)
    retain = stats["retain_freq"].astype(float)
    if name == "forget_freq":
        return forget
    if name == "crisp":
        return forget - stats["retain_near_freq"].astype(float)
    if name == "freq_ratio":
        return forget / (retain + eps)

    def logit(p: pd.Series) -> pd.Series:
        p = (p + eps) / (1 + 2 * eps)
        return np.log(p) - np.log1p(-p)

    return logit(forget) - logit(retain)


def rank_latents(
    stats: pd.DataFrame,
    cfg: SelectConfig,
    source: str = "the latent statistics",
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every latent that passes the filters, best first, with `rank` (1-based), `score` and
    `threshold` (the calibrated gate threshold; 0 without calibration).

    A latent that never fires on the forget corpus (never exceeds its threshold there,
    when calibrated) is never kept: clamping it would do nothing there. Ties break by
    forget frequency, then by latent index, so the order is deterministic.
    """
    validate_statistics(stats, source)
    frame = stats[stat_columns(stats)].copy()
    if cfg.needs_near and "retain_near_freq" not in frame.columns:
        raise UserError(
            f"select.score={cfg.score!r} / select.min_near_ratio={cfg.min_near_ratio} contrast "
            f"forget with the retain_near corpus, but {source} has no retain_near statistics; "
            "set data.retain_near_corpus (e.g. `embedded`) and rerun, or pick another score"
        )
    if windows is not None:
        frame = frame.merge(
            window_statistics(windows, len(frame), cfg.threshold_rate), on="latent", how="left"
        )
    elif cfg.needs_windows:
        raise UserError(
            f"select.score={cfg.score!r} / select.threshold_rate={cfg.threshold_rate} need "
            "the window maxima (windows.parquet from `sae-unlearn score`)"
        )
    else:
        frame["threshold"] = 0.0
    frame["score"] = compute_score(frame, cfg.score, cfg.eps)
    keep = frame["forget_freq"] > 0
    if cfg.threshold_rate is not None:
        keep &= frame["forget_window_freq"] > 0
    keep &= frame["forget_freq"] >= cfg.min_forget_freq
    if cfg.retain_threshold is not None:
        for corpus in BENIGN_CORPORA:  # the filter holds against each benign corpus
            if f"{corpus}_freq" in frame.columns:
                keep &= frame[f"{corpus}_freq"] <= cfg.retain_threshold
    if cfg.min_near_ratio is not None:
        keep &= frame["forget_freq"] >= cfg.min_near_ratio * frame["retain_near_freq"]
    frame = frame[keep].sort_values(
        ["score", "forget_freq", "latent"], ascending=[False, False, True], kind="mergesort"
    )
    frame.insert(0, "rank", np.arange(1, len(frame) + 1, dtype=np.int64))
    frame["score_name"] = cfg.score
    return frame.reset_index(drop=True)


def select_latents(
    stats: pd.DataFrame,
    cfg: SelectConfig,
    source: str = "the latent statistics",
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The top `cfg.top_k` latents: rank, latent, the statistics, threshold, score and
    score_name (and the window frequencies when `windows` is given)."""
    ranked = rank_latents(stats, cfg, source, windows)
    if len(ranked) < cfg.top_k:
        threshold = "no retain filter" if cfg.retain_threshold is None else cfg.retain_threshold
        raise UserError(
            f"only {len(ranked)} latents in {source} fire on the forget corpus with "
            f"retain frequency <= {threshold} and forget frequency >= {cfg.min_forget_freq}, "
            f"fewer than select.top_k={cfg.top_k}; raise select.retain_threshold, lower "
            "select.min_forget_freq, or lower select.top_k"
        )
    return ranked.head(cfg.top_k).reset_index(drop=True)
