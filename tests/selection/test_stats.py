"""The streaming accumulator on hand-built batches, the latents table and its validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sae_unlearn.selection.stats import (
    STAT_COLUMNS,
    LatentAccumulator,
    latent_table,
    validate_statistics,
)
from tests.selection.helpers import hand_stats


def test_accumulator_over_batches():
    acc = LatentAccumulator(d_sae=3, n_top=2, device=torch.device("cpu"))
    # Latent 0 fires on rows 10, 12, 13; latent 1 on row 11 only; latent 2 never.
    acc.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0]]), torch.tensor([10, 11]))
    acc.update(torch.tensor([[3.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), torch.tensor([12, 13]))
    stats = acc.result("forget")
    assert stats.corpus == "forget" and stats.n_tokens == 4
    assert stats.freq.tolist() == [0.75, 0.25, 0.0]
    assert stats.mean.tolist() == [1.5, 1.0, 0.0]
    assert stats.max.tolist() == [3.0, 4.0, 0.0]
    # Top 2 per latent, best first; empty slots hold value 0 and row -1.
    assert stats.top_values.tolist() == [[3.0, 4.0, 0.0], [2.0, 0.0, 0.0]]
    assert stats.top_rows.tolist() == [[12, 11, -1], [13, -1, -1]]


def test_accumulator_without_top_contexts():
    acc = LatentAccumulator(d_sae=2, n_top=0, device=torch.device("cpu"))
    acc.update(torch.tensor([[0.5, 0.0]]), torch.tensor([0]))
    stats = acc.result("retain")
    assert stats.freq.tolist() == [1.0, 0.0] and stats.top_values.shape == (0, 2)


def test_latent_table_has_the_stat_columns():
    acc = LatentAccumulator(d_sae=2, n_top=1, device=torch.device("cpu"))
    acc.update(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
    forget = acc.result("forget")
    acc = LatentAccumulator(d_sae=2, n_top=1, device=torch.device("cpu"))
    acc.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    retain = acc.result("retain")
    table = latent_table(forget, retain)
    assert list(table.columns) == STAT_COLUMNS
    assert table["latent"].tolist() == [0, 1]
    assert table["forget_freq"].tolist() == [0.5, 0.0]
    assert table["retain_freq"].tolist() == [0.0, 1.0]
    assert table["forget_mean"].tolist() == [1.0, 0.0]
    assert table["forget_max"].tolist() == [2.0, 0.0] and table["retain_max"].tolist() == [0, 1]
    assert table["forget_max"].dtype == np.float64


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.drop(columns="retain_max"), r"lacks columns \['retain_max'\]"),
        (lambda s: s.head(0), "has no latents"),
        (lambda s: s.assign(latent=s["latent"].astype(float)), "must hold integers"),
        (lambda s: s.assign(latent=[0, 1, 2, 2, 4, 5, 6]), r"repeated \(e.g. \[2\]\)"),
        (lambda s: s.assign(forget_mean=np.nan), "missing \\(NaN\\)"),
        (lambda s: s.assign(retain_freq=1.5), r"must lie in \[0, 1\]"),
    ],
)
def test_validate_statistics_names_the_problem(edit, message):
    validate_statistics(hand_stats())
    with pytest.raises(ValueError, match=message):
        validate_statistics(edit(hand_stats()), "s.parquet")


def test_validate_statistics_accepts_extra_columns():
    validate_statistics(pd.concat([hand_stats(), pd.DataFrame({"x": range(7)})], axis=1))
