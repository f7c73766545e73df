"""The selection rule on hand-built statistics: each score, the filters, calibrated
windows, and the errors that name what to change."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sae_unlearn.selection.config import SelectConfig
from sae_unlearn.selection.ranking import compute_score, rank_latents, select_latents
from sae_unlearn.selection.stats import STAT_COLUMNS
from tests.selection.helpers import hand_stats, hand_windows


def logit(p: float, eps: float = 1e-4) -> float:
    p = (p + eps) / (1 + 2 * eps)
    return math.log(p / (1 - p))


@pytest.mark.parametrize(
    ("score", "order"),
    [
        # latent 0 fires on 20% of retain: over the threshold; latent 5 never fires on forget.
        ("forget_freq", [6, 1, 2, 3, 4]),
        # 0.3/1e-4 = 3000 > 0.05/1e-4 = 500 > 0.2/0.0011 > 0.99/0.0091 > 0.4/0.0051
        ("freq_ratio", [2, 4, 3, 6, 1]),
        # log-odds does not saturate: 0.99 on forget outweighs 0.009 on retain.
        ("log_odds", [6, 2, 4, 3, 1]),
    ],
)
def test_selection_threshold_and_ranking(score, order):
    stats = hand_stats()
    ranked = rank_latents(stats, SelectConfig(score=score, retain_threshold=0.01))
    assert ranked["latent"].tolist() == order
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert (ranked["score_name"] == score).all()
    f, r = stats["forget_freq"], stats["retain_freq"]
    expected = {
        "forget_freq": f,
        "freq_ratio": f / (r + 1e-4),
        "log_odds": pd.Series([logit(a) - logit(b) for a, b in zip(f, r, strict=True)]),
    }[score]
    np.testing.assert_allclose(ranked["score"], expected[order].to_numpy(), rtol=1e-12)
    top = select_latents(stats, SelectConfig(score=score, top_k=3, retain_threshold=0.01))
    assert top["latent"].tolist() == order[:3]
    assert list(top.columns) == ["rank", *STAT_COLUMNS, "threshold", "score", "score_name"]


def test_selection_filters():
    stats = hand_stats()
    strict = rank_latents(stats, SelectConfig(retain_threshold=0.001))
    assert strict["latent"].tolist() == [2, 3, 4]  # retain 0.001 is kept (<=)
    floor = rank_latents(stats, SelectConfig(retain_threshold=0.001, min_forget_freq=0.1))
    assert floor["latent"].tolist() == [2, 3]
    unfiltered = rank_latents(stats, SelectConfig(retain_threshold=None))
    assert unfiltered["latent"].tolist() == [6, 0, 1, 2, 3, 4]  # never-firing 5 is out


def test_select_by_calibrated_window_frequency():
    stats = hand_stats().head(3)
    cfg = SelectConfig(
        score="forget_window_freq", top_k=2, retain_threshold=None, threshold_rate=0.2
    )
    top = select_latents(stats, cfg, windows=hand_windows())
    assert top["latent"].tolist() == [1, 0]  # latent 2 never exceeds its threshold
    assert top["threshold"].tolist() == [0.0, 3.0]
    with pytest.raises(ValueError, match="need.*window maxima"):
        select_latents(stats, cfg)


def test_forget_window_freq_needs_the_window_columns():
    stats = hand_stats().assign(forget_window_freq=[0.5, 0.25, 0, 0, 0, 0, 1])
    assert compute_score(stats, "forget_window_freq").tolist() == [0.5, 0.25, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="needs the window statistics"):
        compute_score(hand_stats(), "forget_window_freq")
    with pytest.raises(ValueError, match="score='bogus'"):
        compute_score(hand_stats(), "bogus")


def test_too_few_latents_names_the_params():
    with pytest.raises(ValueError) as err:
        select_latents(hand_stats(), SelectConfig(top_k=4, retain_threshold=0.001), "s.parquet")
    message = str(err.value)
    assert "only 3 latents in s.parquet" in message and "select.top_k=4" in message
    assert "select.retain_threshold" in message and "select.min_forget_freq" in message


def test_bad_statistics_are_named():
    with pytest.raises(ValueError, match=r"s.parquet lacks columns \['retain_max'\]"):
        select_latents(hand_stats().drop(columns="retain_max"), SelectConfig(), "s.parquet")
    out_of_range = hand_stats()
    out_of_range.loc[3, "latent"] = 70
    with pytest.raises(ValueError, match=r"latents out of range or repeated \(e.g. \[70\]\)"):
        select_latents(out_of_range, SelectConfig(), "s.parquet")
