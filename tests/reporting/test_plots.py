"""The figures' PNGs and the plot data DVC reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sae_unlearn.reporting.plots import accuracy_figure, latents_figure, plot_lines

PNG = b"\x89PNG\r\n\x1a\n"


def _group(acc: float, n: int, **subjects) -> dict:
    group = {"acc": acc, "acc_ci": [acc - 0.1, acc + 0.05], "n": n}
    if subjects:
        group["by_subject"] = subjects
    return group


def test_accuracy_figure_writes_fixed_columns_per_model(tmp_path: Path):
    baseline = {
        "forget": _group(0.8, 20, virology=_group(0.9, 10), immunology=_group(0.7, 10)),
        "retain": _group(0.6, 5),
    }
    steered = {"forget": _group(0.3, 20), "retain": _group(0.55, 5)}
    data = accuracy_figure(baseline, steered, "acc", tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG
    assert sorted(data) == ["accuracy_baseline.csv", "accuracy_steered.csv"]
    base = data["accuracy_baseline.csv"]
    assert list(base.columns) == [
        "label",
        "role",
        "subject",
        "metric",
        "accuracy",
        "ci_low",
        "ci_high",
        "n",
    ]
    # Pooled first, then the subjects in alphabetical order.
    assert base["label"].tolist() == [
        "forget: all",
        "forget: immunology",
        "forget: virology",
        "retain: all",
    ]
    assert base["accuracy"].tolist() == [0.8, 0.7, 0.9, 0.6]
    assert base["ci_low"].tolist() == pytest.approx([0.7, 0.6, 0.8, 0.5])
    assert (base["metric"] == "acc").all() and base["n"].tolist() == [20, 10, 10, 5]
    assert data["accuracy_steered.csv"]["accuracy"].tolist() == [0.3, 0.55]


def test_accuracy_figure_without_metrics_draws_nothing(tmp_path: Path):
    assert accuracy_figure(None, {}, "acc", tmp_path / "accuracy.png") == {}
    assert not (tmp_path / "accuracy.png").exists()
    steered_only = accuracy_figure(None, {"forget": _group(0.3, 4)}, "acc", tmp_path / "a.png")
    assert list(steered_only) == ["accuracy_steered.csv"]


def test_latents_figure_drops_dead_latents_and_logs_at_the_floor(tmp_path: Path):
    latents = pd.DataFrame(
        {
            "latent": [0, 1, 2, 3],
            "forget_freq": [0.04, 0.0, 0.0, 0.002],
            "retain_freq": [0.0, 0.01, 0.0, 0.02],
        }
    )
    data = latents_figure(latents, [0, 3], 0.01, tmp_path / "latents.png")
    assert (tmp_path / "latents.png").read_bytes()[:8] == PNG
    freqs = data["latent_freqs.csv"]
    assert freqs["latent"].tolist() == [0, 1, 3]  # latent 2 never fires
    # Smallest positive frequency 0.002: the floor sits half a decade below 1e-3.
    assert freqs["log10_retain_freq"].tolist() == pytest.approx([-3.5, -2.0, -1.69897])
    assert freqs["log10_forget_freq"].tolist() == pytest.approx([-1.39794, -3.5, -2.69897])
    assert freqs["selected"].tolist() == [True, False, True]
    assert data["selected_latents.csv"]["latent"].tolist() == [0, 3]


def test_latents_figure_shows_retain_near_frequency(tmp_path: Path):
    latents = pd.DataFrame(
        {
            "latent": [0, 1, 2, 3],
            "forget_freq": [0.04, 0.0, 0.0, 0.002],
            "retain_freq": [0.0, 0.01, 0.0, 0.02],
            "retain_near_freq": [0.03, 0.0, 0.001, 0.0],
        }
    )
    data = latents_figure(latents, [0], None, tmp_path / "latents.png")
    freqs = data["latent_freqs.csv"]
    assert freqs["latent"].tolist() == [0, 1, 2, 3]  # latent 2 fires on retain_near alone
    # Smallest positive frequency 0.001: the floor sits half a decade below 1e-3.
    assert freqs["log10_retain_near_freq"].tolist() == pytest.approx([-1.52288, -3.5, -3.0, -3.5])
    two_panels = (tmp_path / "latents.png").read_bytes()
    latents_figure(latents.drop(columns="retain_near_freq"), [0], None, tmp_path / "one.png")
    assert two_panels != (tmp_path / "one.png").read_bytes()


def test_png_bytes_depend_only_on_the_data(tmp_path: Path):
    frame = pd.DataFrame(
        {"k": [0, 1, 4], "baseline": [0.8, 0.82, 0.85], "steered": [0.3, 0.3, 0.4]}
    )
    for name in ("a.png", "b.png"):
        plot_lines(frame, "k", ["baseline", "steered"], tmp_path / name, "t", "y")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in (tmp_path / "a.png").read_bytes()
