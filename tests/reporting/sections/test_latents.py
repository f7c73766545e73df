"""The selected-latents section: the table's columns, the scatter, the cards."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.sections.latents import latents_section, selection_table


def test_selection_table_merges_frequencies_and_shows_thresholds_when_calibrated():
    selected = pd.DataFrame(
        {
            "latent": [9, 4],
            "rank": [2, 1],
            "score": [0.1, 0.2],
            "score_name": "forget_freq",
            "threshold": [0.0, 1.5],
            "forget_window_freq": [0.01, 0.02],
        }
    )
    latents = pd.DataFrame({"latent": [4, 9], "forget_freq": [2e-5, 0.5], "retain_freq": [0, 0.1]})
    table = selection_table(selected, latents)
    assert table.headers == [
        "rank",
        "latent",
        "forget freq",
        "retain freq",
        "threshold",
        "forget window freq",
        "score (forget_freq)",
    ]
    assert table.rows == [
        ["1", "4", "2e-05", "0", "1.5000", "0.02", "0.2000"],
        ["2", "9", "0.5", "0.1", "0.0000", "0.01", "0.1000"],
    ]
    uncalibrated = selection_table(selected.assign(threshold=0.0), latents)
    assert "threshold" not in uncalibrated.headers


def test_contexts_without_needed_columns_are_named(tmp_path: Path):
    inputs = ReportInputs(
        selected=pd.DataFrame({"latent": [1], "rank": [1]}),
        contexts=pd.DataFrame({"latent": [1], "left": ["a"]}),
        sources={"latents": "data/scores/latents.parquet"},
    )
    section, data = latents_section(inputs, ReportOptions(), tmp_path, "plots")
    assert section.contexts_note == "The contexts file lacks columns ['right', 'token']."
    assert section.cards == [] and data == {} and section.figure is None
    assert section.notes[0][1] == ("code", "data/scores/latents.parquet")


def test_no_selection_means_no_contexts_subsection(tmp_path: Path):
    latents = pd.DataFrame({"latent": [0, 1], "forget_freq": [0.1, 0], "retain_freq": [0, 0.2]})
    section, data = latents_section(ReportInputs(latents=latents), ReportOptions(), tmp_path, "p")
    assert section.table is None and section.contexts_note is None
    assert section.figure.link == "p/latents.png"
    assert data["selected_latents.csv"].empty
