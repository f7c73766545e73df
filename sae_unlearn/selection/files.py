"""Where score and select find their inputs and put their outputs, by file name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sae_unlearn.activations.read import corpus_cache_paths
from sae_unlearn.errors import MissingInputError
from sae_unlearn.io import atomic_dir, write_parquet

LATENTS_FILE = "latents.parquet"  # STAT_COLUMNS
CONTEXTS_FILE = "contexts.parquet"  # CONTEXT_COLUMNS
WINDOWS_FILE = "windows.parquet"  # WINDOW_COLUMNS, beside the latents
SELECTED_FILE = "selected.parquet"


def cache_paths(cache_dir: str | Path) -> dict[str, Path]:
    """The activation cache of each corpus in `cache_dir`: forget and retain, which must
    exist, and retain_near when it was cached."""
    return corpus_cache_paths(cache_dir)


def write_scores(
    out_dir: str | Path, latents: pd.DataFrame, contexts: pd.DataFrame, windows: pd.DataFrame
) -> None:
    """The score stage's three tables (a ScoreResult's), as one folder replaced whole."""
    with atomic_dir(out_dir) as tmp:
        write_parquet(tmp / LATENTS_FILE, latents)
        write_parquet(tmp / CONTEXTS_FILE, contexts)
        write_parquet(tmp / WINDOWS_FILE, windows)


def read_scores(
    stats_path: str | Path, with_windows: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The latent statistics at `stats_path` and, when wanted, the window maxima beside them."""
    stats_path = Path(stats_path)
    if not stats_path.exists():
        raise MissingInputError(f"{stats_path} does not exist; run `sae-unlearn score` first")
    windows = None
    if with_windows:
        windows_path = stats_path.parent / WINDOWS_FILE
        if not windows_path.exists():
            raise MissingInputError(
                f"{windows_path} does not exist; select.threshold_rate and the "
                "forget_window_freq score need it: rerun `sae-unlearn score`"
            )
        windows = pd.read_parquet(windows_path)
    return pd.read_parquet(stats_path), windows
