"""Window maxima against a dense computation, and threshold calibration by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from sae_unlearn.activations import read_tokens
from sae_unlearn.selection.scoring import corpus_statistics
from sae_unlearn.selection.stats import CorpusStatistics
from sae_unlearn.selection.windows import (
    WINDOW_COLUMNS,
    WindowMaxima,
    window_statistics,
    window_table,
)
from tests.selection.helpers import LAYER, dense_statistics, hand_windows, planted_sae


@pytest.mark.parametrize("batch_size", [7, 4096])  # 7 splits windows across batches
def test_window_maxima_equal_dense_computation(cache_dir, batch_size):
    sae = planted_sae(cache_dir)
    path = cache_dir / "forget"
    stats = corpus_statistics(sae, path, LAYER, batch_size=batch_size, progress=False, window=4)
    dense = dense_statistics(sae, path, top_n=0)
    tokens = read_tokens(path).to_pandas()[dense["keep"].numpy()]
    f = dense["all"][dense["keep"]].numpy()
    frame = pd.DataFrame(f).assign(
        seq=tokens["sequence_id"].to_numpy(), win=tokens["position"].to_numpy() // 4
    )
    maxima = frame.groupby(["seq", "win"]).max()
    assert stats.n_windows == len(maxima)
    got = np.zeros(maxima.shape)
    window_ids = {key: n for n, key in enumerate(maxima.index)}
    # Our window numbers are dense ranks of (sequence, position // 4), in that order.
    assert sorted(window_ids.values()) == list(range(len(maxima)))
    got[stats.windows["window"], stats.windows["latent"]] = stats.windows["value"]
    np.testing.assert_allclose(got, maxima.to_numpy(), rtol=1e-5, atol=1e-6)
    assert (stats.windows["value"] > 0).all()  # stored sparse


def test_window_statistics_calibrate_thresholds():
    stats = window_statistics(hand_windows(), d_sae=3, threshold_rate=0.2)
    # rate 0.2 of 10 windows: at most 2 may exceed, so latent 0's threshold is its 3rd
    # largest retain maximum; latent 1 exceeds 0 on 1 <= 2 windows, so 0 is enough.
    assert stats["threshold"].tolist() == [3.0, 0.0, 0.0]
    assert stats["retain_window_freq"].tolist() == [0.2, 0.1, 0.0]
    assert stats["forget_window_freq"].tolist() == [0.25, 0.5, 0.0]
    plain = window_statistics(hand_windows(), d_sae=3, threshold_rate=None)
    assert plain["threshold"].tolist() == [0.0, 0.0, 0.0]
    assert plain["retain_window_freq"].tolist() == [0.5, 0.1, 0.0]
    assert plain["forget_window_freq"].tolist() == [0.75, 0.5, 0.0]
    with pytest.raises(ValueError, match="out of range for 1 latents"):
        window_statistics(hand_windows(), d_sae=1, threshold_rate=0.2)
    with pytest.raises(ValueError, match="lacks columns"):
        window_statistics(hand_windows().drop(columns="n_windows"), 3, 0.2)


def test_window_table_stacks_both_corpora():
    def stats(corpus: str, windows: pd.DataFrame | None, n_windows: int) -> CorpusStatistics:
        return CorpusStatistics(corpus, 0, *([None] * 5), windows=windows, n_windows=n_windows)

    forget = pd.DataFrame({"window": [0, 2], "latent": [5, 1], "value": [1.5, 0.25]})
    table = window_table(stats("forget", forget, 3), stats("retain", None, 7))
    assert list(table.columns) == WINDOW_COLUMNS
    assert table["corpus"].tolist() == ["forget", "forget"]
    assert table["window"].tolist() == [0, 2] and table["latent"].tolist() == [5, 1]
    assert table["value"].tolist() == [1.5, 0.25] and table["n_windows"].tolist() == [3, 3]
    assert table.dtypes.astype(str).tolist()[1:] == ["int32", "int32", "float32", "int64"]


def test_window_maxima_merge_windows_split_across_batches():
    tokens = pa.table(
        {
            "sequence_id": [0, 0, 0, 0, 1, 1],
            "position": [0, 1, 2, 3, 0, 1],
            "is_special": [True, False, False, False, True, False],
        }
    )
    maxima = WindowMaxima(tokens, width=2)  # windows: rows 0-1, 2-3 and 4-5
    assert maxima.n_windows == 3
    maxima.update(torch.tensor([[1.0, 0.0], [2.0, 0.5]]), torch.tensor([1, 2]))
    maxima.update(torch.tensor([[3.0, 0.0], [0.0, 0.0]]), torch.tensor([3, 5]))
    result = maxima.result()
    assert result["window"].tolist() == [0, 1, 1]
    assert result["latent"].tolist() == [0, 0, 1]
    assert result["value"].tolist() == [1.0, 3.0, 0.5]
