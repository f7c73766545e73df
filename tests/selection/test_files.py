"""The score and select stages' files: caches found, scores written and read back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sae_unlearn.activations import MANIFEST, CacheError
from sae_unlearn.selection.files import cache_paths, read_scores, write_scores
from tests.selection.helpers import hand_stats, hand_windows


def complete(folder: Path) -> Path:
    folder.mkdir()
    (folder / MANIFEST).write_text("{}")
    return folder


def test_cache_paths(tmp_path):
    with pytest.raises(CacheError, match=r"forget does not exist; run `sae-unlearn cache`"):
        cache_paths(tmp_path)
    for corpus in ("forget", "retain"):
        complete(tmp_path / corpus)
    assert cache_paths(tmp_path) == {"forget": tmp_path / "forget", "retain": tmp_path / "retain"}
    # retain_near is optional: found when it was cached
    complete(tmp_path / "retain_near")
    assert list(cache_paths(tmp_path)) == ["forget", "retain", "retain_near"]


def test_old_and_incomplete_caches_are_refused(tmp_path):
    (tmp_path / "forget.parquet").touch()
    complete(tmp_path / "retain")
    with pytest.raises(CacheError, match=r"forget.parquet is a single-file activation cache"):
        cache_paths(tmp_path)
    (tmp_path / "forget.parquet").unlink()
    (tmp_path / "forget").mkdir()  # what an interrupted writer could leave, were it not atomic
    with pytest.raises(CacheError, match=r"forget has no manifest.json, so it is not a complete"):
        cache_paths(tmp_path)


def test_write_and_read_scores(tmp_path):
    contexts = pd.DataFrame({"latent": [1], "token": ["x"]})
    write_scores(tmp_path / "scores", hand_stats(), contexts, hand_windows())
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "contexts.parquet",
        "latents.parquet",
        "windows.parquet",
    ]
    stats_path = tmp_path / "scores" / "latents.parquet"
    latents, windows = read_scores(stats_path, with_windows=False)
    pd.testing.assert_frame_equal(latents, hand_stats())
    assert windows is None
    _, windows = read_scores(stats_path, with_windows=True)
    pd.testing.assert_frame_equal(windows, hand_windows())


def test_read_scores_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `sae-unlearn score` first"):
        read_scores(tmp_path / "latents.parquet", with_windows=False)
    hand_stats().to_parquet(tmp_path / "latents.parquet")
    with pytest.raises(FileNotFoundError, match="windows.parquet does not exist"):
        read_scores(tmp_path / "latents.parquet", with_windows=True)
