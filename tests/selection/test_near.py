"""The retain_near corpus in scoring and selection: three-corpus statistics, thresholds that
hold against each benign corpus, CRISP's contrast with in-domain benign text."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.activations import CacheConfig, cache_corpus
from sae_unlearn.selection.config import SelectConfig
from sae_unlearn.selection.ranking import compute_score, rank_latents, select_latents
from sae_unlearn.selection.scoring import corpus_statistics
from sae_unlearn.selection.stats import latent_table
from sae_unlearn.selection.windows import window_statistics, window_table
from tests.selection.helpers import LAYER, SEQ_LEN, hand_stats, hand_windows, planted_sae
from tests.selection.test_stages import write_params
from tests.tiny import TRAINING_TEXT


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_score_stage_scores_the_retain_near_cache_too(tmp_path, cache_dir, tiny_model):
    model, tokenizer = tiny_model
    caches = tmp_path / "cache"
    shutil.copytree(cache_dir, caches)
    cfg = CacheConfig(layers=(0, LAYER), seq_len=SEQ_LEN, batch_size=3, max_tokens=SEQ_LEN * 6)
    near_texts = [TRAINING_TEXT[i] for i in (3, 5, 6)] * 4
    cache_corpus(
        model,
        tokenizer,
        near_texts,
        "retain_near",
        cfg,
        caches / "retain_near",
        progress=False,
    )
    sae = planted_sae(cache_dir)
    sae.save_model(tmp_path / "sae")
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    params = write_params(tmp_path, caches, model_dir, tmp_path / "sae", retain_threshold=None)
    result = CliRunner().invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    stats = {
        c: corpus_statistics(sae, caches / c, LAYER, c, progress=False)
        for c in ("forget", "retain", "retain_near")
    }
    latents = pd.read_parquet(tmp_path / "scores" / "latents.parquet")
    expected = latent_table(*stats.values())
    assert {"retain_near_freq", "retain_near_mean", "retain_near_max"} <= set(latents.columns)
    pd.testing.assert_frame_equal(latents, expected, rtol=1e-6)
    # the near corpus is its own text: its frequencies are not retain's
    assert not np.allclose(latents["retain_near_freq"], latents["retain_freq"])
    windows = pd.read_parquet(tmp_path / "scores" / "windows.parquet")
    assert set(windows["corpus"]) == {"forget", "retain", "retain_near"}
    pd.testing.assert_frame_equal(windows, window_table(*stats.values()))
    contexts = pd.read_parquet(tmp_path / "scores" / "contexts.parquet")
    assert "retain_near" in set(contexts["corpus"])

    # select reads them: CRISP's score contrasts forget with retain_near
    result = CliRunner().invoke(
        app, ["select", "--params", str(params), "--score", "crisp", "--top-k", "2"]
    )
    assert result.exit_code == 0, result.output
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    crisp = latents["forget_freq"] - latents["retain_near_freq"]
    best = latents.assign(s=crisp).sort_values(
        ["s", "forget_freq", "latent"], ascending=[False, False, True]
    )
    best = best[best["forget_freq"] > 0]
    assert selected["latent"].tolist() == best["latent"].head(2).tolist()


def near_windows() -> pd.DataFrame:
    """hand_windows plus retain_near windows: 8 of them; latent 0's maxima 6, 4.5, 1 there,
    latent 1 never fires there."""
    near = pd.DataFrame(
        [("retain_near", w, 0, v) for w, v in enumerate([6.0, 4.5, 1.0])],
        columns=["corpus", "window", "latent", "value"],
    )
    near["n_windows"] = 8
    return pd.concat([hand_windows(), near], ignore_index=True)


def test_threshold_is_the_stricter_of_the_two_calibrations():
    # rate 0.15: m = floor(1.5) = 1 of 10 retain windows, floor(1.2) = 1 of 8 near windows,
    # so each corpus's threshold is its 2nd largest window maximum.
    stats = window_statistics(near_windows(), d_sae=3, threshold_rate=0.15)
    assert stats["threshold_retain"].tolist() == [4.0, 0.0, 0.0]
    assert stats["threshold_retain_near"].tolist() == [4.5, 0.0, 0.0]
    assert stats["threshold"].tolist() == [4.5, 0.0, 0.0]  # near is stricter for latent 0
    # window frequencies at the stricter threshold: forget 10 > 4.5 (1 of 4); retain 5 (1 of
    # 10); near 6 (1 of 8); latent 1 at threshold 0: forget 2 of 4, retain 1 of 10, near 0
    assert stats["forget_window_freq"].tolist() == [0.25, 0.5, 0.0]
    assert stats["retain_window_freq"].tolist() == [0.1, 0.1, 0.0]
    assert stats["retain_near_window_freq"].tolist() == [0.125, 0.0, 0.0]
    # without retain_near windows: retain's calibration alone, as before
    alone = window_statistics(hand_windows(), d_sae=3, threshold_rate=0.15)
    assert alone["threshold"].tolist() == [4.0, 0.0, 0.0]
    assert "retain_near_window_freq" not in alone.columns


def count_table() -> pd.DataFrame:
    """Latent statistics with a retain_near column, by hand."""
    stats = hand_stats()
    # forget 0.5 0.4 0.3 0.2 0.05 0.0 0.99; retain_near below
    stats.insert(3, "retain_near_freq", [0.1, 0.2, 0.05, 0.0, 0.01, 0.3, 0.5])
    stats["retain_near_mean"] = 0.1
    stats["retain_near_max"] = 1.0
    return stats


def test_crisp_score_and_ratio_filter_on_a_count_table():
    stats = count_table()
    crisp = compute_score(stats, "crisp")
    np.testing.assert_allclose(crisp, [0.4, 0.2, 0.25, 0.2, 0.04, -0.3, 0.49])
    cfg = SelectConfig(top_k=3, score="crisp", retain_threshold=None, min_near_ratio=3.0)
    ranked = rank_latents(stats, cfg)
    # ratio >= 3: latent 0 (5x), 2 (6x), 3 (never on near), 4 (5x) pass; 1 (2x), 6 (1.98x)
    # fail; 5 never fires on forget. Ranked by crisp: 0 (0.4), 2 (0.25), 3 (0.2), 4 (0.04).
    assert ranked["latent"].tolist() == [0, 2, 3, 4]
    assert select_latents(stats, cfg)["latent"].tolist() == [0, 2, 3]
    # without the ratio filter, latent 6 (the broadest) ranks first
    loose = rank_latents(stats, SelectConfig(top_k=3, score="crisp", retain_threshold=None))
    assert loose["latent"].tolist()[:2] == [6, 0]


def test_retain_filter_holds_against_each_benign_corpus():
    stats = count_table()
    cfg = SelectConfig(top_k=1, score="forget_freq", retain_threshold=0.05)
    # retain <= 0.05: 1, 2, 3, 4, 6; retain_near <= 0.05 leaves 2, 3, 4
    assert rank_latents(stats, cfg)["latent"].tolist() == [2, 3, 4]
    assert rank_latents(hand_stats(), cfg)["latent"].tolist() == [6, 1, 2, 3, 4]


def test_near_rules_need_the_near_statistics():
    for cfg in (
        SelectConfig(top_k=1, score="crisp"),
        SelectConfig(top_k=1, score="forget_freq", min_near_ratio=3.0),
    ):
        with pytest.raises(ValueError, match="no retain_near statistics; set data.retain_near"):
            rank_latents(hand_stats(), cfg)
    with pytest.raises(ValueError, match="min_near_ratio=0.0 must be positive"):
        SelectConfig(min_near_ratio=0.0)
