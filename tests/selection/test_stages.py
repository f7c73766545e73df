"""The score and select stages end to end on the tiny caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sae_lens import StandardSAE, StandardSAEConfig
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.selection.config import SelectConfig
from sae_unlearn.selection.ranking import select_latents
from sae_unlearn.selection.scoring import corpus_statistics
from sae_unlearn.selection.stats import latent_table
from sae_unlearn.selection.windows import window_statistics, window_table
from tests.selection.helpers import LAYER, planted_sae


def write_params(tmp_path: Path, cache_dir: Path, model_dir: Path, sae_dir: Path, **select):
    params = {
        "model": {"dir": str(model_dir)},
        "cache": {"dir": str(cache_dir)},
        "sae": {"layer": LAYER, "dir": str(sae_dir)},
        "score": {
            "dir": str(tmp_path / "scores"),
            "batch_size": 50,
            "top_contexts": 2,
            "context_latents": 3,
            "context_window": 4,
            "rankings": ["forget_freq", "log_odds"],
        },
        "select": {
            "dir": str(tmp_path / "selection"),
            "score": "freq_ratio",
            "top_k": 3,
            "retain_threshold": 0.5,
            "min_forget_freq": 0.0,
            "eps": 0.0001,
            "threshold_rate": None,
            **select,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def top_three(frame: pd.DataFrame, score: pd.Series) -> set[int]:
    """The 3 best latents by `score`, ties by forget frequency then index (select's order)."""
    ordered = frame.assign(s=score).sort_values(
        ["s", "forget_freq", "latent"], ascending=[False, False, True]
    )
    return set(ordered["latent"].head(3).tolist())


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Stages log their run times under ./logs: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def test_score_and_select_stages(tmp_path, cache_dir, tiny_model_dir):
    sae = planted_sae(cache_dir)
    sae.save_model(tmp_path / "sae")
    runner = CliRunner()
    params = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae")
    result = runner.invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    latents = pd.read_parquet(tmp_path / "scores" / "latents.parquet")
    forget = corpus_statistics(sae, cache_dir / "forget", LAYER, progress=False)
    retain = corpus_statistics(sae, cache_dir / "retain", LAYER, progress=False)
    pd.testing.assert_frame_equal(latents, latent_table(forget, retain), rtol=1e-6)
    contexts = pd.read_parquet(tmp_path / "scores" / "contexts.parquet")
    assert contexts.groupby(["latent", "corpus"]).size().max() == 2
    assert {"left", "token", "right"} <= set(contexts.columns)
    # Atomic writes leave no temporary siblings behind.
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "contexts.parquet",
        "latents.parquet",
        "windows.parquet",
    ]
    windows = pd.read_parquet(tmp_path / "scores" / "windows.parquet")
    pd.testing.assert_frame_equal(windows, window_table(forget, retain))

    # Contexts follow select's rule (retain_freq <= 0.5), not a copy of it in score.*.
    kept = latents[(latents["forget_freq"] > 0) & (latents["retain_freq"] <= 0.5)]

    def logit(p: pd.Series) -> pd.Series:
        p = (p + 1e-4) / (1 + 2e-4)
        return np.log(p / (1 - p))

    odds = logit(kept["forget_freq"]) - logit(kept["retain_freq"])
    expected = top_three(kept, kept["forget_freq"]) | top_three(kept, odds)
    assert set(contexts["latent"]) == expected
    assert not top_three(latents, latents["forget_freq"]) <= expected  # the filter mattered

    result = runner.invoke(app, ["select", "--params", str(params)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    expected = select_latents(
        latents, SelectConfig(top_k=3, score="freq_ratio", retain_threshold=0.5)
    )
    pd.testing.assert_frame_equal(selected, expected)
    assert len(selected) == 3 and (selected["retain_freq"] <= 0.5).all()

    # An explicit option wins over params.yaml.
    result = runner.invoke(app, ["select", "--params", str(params), "--score", "forget_freq"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    assert selected["forget_freq"].is_monotonic_decreasing
    assert (selected["score_name"] == "forget_freq").all()

    # Calibrated thresholds for gated_clamp come from windows.parquet.
    result = runner.invoke(
        app,
        ["select", "--params", str(params), "--score", "forget_window_freq"]
        + ["--threshold-rate", "0.1"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    calibrated = window_statistics(windows, len(latents), 0.1).set_index("latent")
    np.testing.assert_allclose(
        selected["threshold"], calibrated.loc[selected["latent"], "threshold"], rtol=0
    )
    assert (selected["threshold"] > 0).any()

    too_many = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae", top_k=500)
    result = runner.invoke(app, ["select", "--params", str(too_many)])
    assert result.exit_code == 2  # a usage error: the message, no traceback
    assert "select.top_k=500" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_score_stage_rejects_wrong_width(tmp_path, cache_dir, tiny_model_dir):
    StandardSAE(StandardSAEConfig(d_in=16, d_sae=8)).save_model(tmp_path / "sae")
    params = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae")
    result = CliRunner().invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "reads 16-dimensional" in result.output
    assert str(cache_dir / "forget") in result.output
    assert not (tmp_path / "scores").exists()


def test_stages_name_missing_inputs(tmp_path, tiny_model_dir):
    params = write_params(tmp_path, tmp_path / "no_cache", tiny_model_dir, tmp_path / "sae")
    result = CliRunner().invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code != 0 and "run `sae-unlearn cache` first" in result.output
    result = CliRunner().invoke(app, ["select", "--params", str(params)])
    assert result.exit_code != 0 and "run `sae-unlearn score` first" in result.output
