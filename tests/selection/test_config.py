"""The configs: their checks, and ScoreConfig ranking with select's rule."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sae_unlearn.selection.config import RULE_FIELDS, ScoreConfig, SelectConfig


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="select.score='bogus'"):
        SelectConfig(score="bogus")
    with pytest.raises(ValueError, match="select.top_k=0"):
        SelectConfig(top_k=0)
    with pytest.raises(ValueError, match="score.rankings entry='nope'"):
        ScoreConfig(layer=1, rankings=("nope",))
    with pytest.raises(ValueError, match=r"select.threshold_rate=1.0 must be in \[0, 1\)"):
        SelectConfig(threshold_rate=1.0)
    with pytest.raises(ValueError, match="select.retain_threshold=2"):
        SelectConfig(retain_threshold=2)
    with pytest.raises(ValueError, match="select.min_forget_freq=-0.1"):
        SelectConfig(min_forget_freq=-0.1)
    with pytest.raises(ValueError, match="select.eps=0"):
        SelectConfig(eps=0)
    with pytest.raises(ValueError, match="score.batch_size=0"):
        ScoreConfig(layer=1, batch_size=0)
    with pytest.raises(ValueError, match="score.window=0"):
        ScoreConfig(layer=1, window=0)
    with pytest.raises(ValueError, match="must not be negative"):
        ScoreConfig(layer=1, context_latents=-1)


def test_needs_windows():
    assert not SelectConfig().needs_windows
    assert SelectConfig(threshold_rate=0.0).needs_windows
    assert SelectConfig(score="forget_window_freq").needs_windows


def test_ranking_config_takes_the_rule_from_select():
    rule = SelectConfig(
        top_k=3,
        score="log_odds",
        retain_threshold=None,
        min_forget_freq=0.2,
        eps=0.01,
        threshold_rate=0.05,
    )
    cfg = ScoreConfig(layer=1, context_latents=40, select=rule)
    assert cfg.ranking_config("freq_ratio") == SelectConfig(
        top_k=40,
        score="freq_ratio",
        retain_threshold=None,
        min_forget_freq=0.2,
        eps=0.01,
        threshold_rate=0.05,
    )
    # No contexts still gives a valid rule (top_k at least 1).
    assert ScoreConfig(layer=1, context_latents=0).ranking_config("forget_freq").top_k == 1


def test_score_config_defaults_to_selects_defaults():
    rule = ScoreConfig(layer=1).select
    assert (rule.retain_threshold, rule.min_forget_freq, rule.eps, rule.threshold_rate) == (
        0.01,
        0.0,
        1e-4,
        None,
    )


def test_rule_fields_are_everything_but_score_and_k():
    names = {f.name for f in fields(SelectConfig)}
    assert set(RULE_FIELDS) == names - {"score", "top_k"}
