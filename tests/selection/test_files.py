"""The score and select stages' files: caches found, scores written and read back."""

from __future__ import annotations

import pandas as pd
import pytest

from sae_unlearn.activations import CacheError
from sae_unlearn.selection.files import cache_paths, read_scores, write_scores
from tests.selection.helpers import hand_stats, hand_windows


def test_cache_paths(tmp_path):
    with pytest.raises(CacheError, match=r"forget.parquet does not exist; run `sae-unlearn"):
        cache_paths(tmp_path)
    for corpus in ("forget", "retain"):
        (tmp_path / f"{corpus}.parquet").touch()
    assert cache_paths(tmp_path) == {
        "forget": tmp_path / "forget.parquet",
        "retain": tmp_path / "retain.parquet",
    }
    # retain_near is optional: found when it was cached
    (tmp_path / "retain_near.parquet").touch()
    assert list(cache_paths(tmp_path)) == ["forget", "retain", "retain_near"]


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
