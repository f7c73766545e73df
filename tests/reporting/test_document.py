"""The pieces the templates lay out."""

from __future__ import annotations

from pathlib import Path

from sae_unlearn.reporting.document import Table, figure, missing
from sae_unlearn.reporting.format import md_rich
from sae_unlearn.reporting.inputs import ReportInputs


def test_missing_note_names_the_files():
    inputs = ReportInputs(sources={"baseline": "metrics/baseline.json"})
    note = missing(inputs, "baseline", "steered")
    assert md_rich(note) == (
        "Not available yet (`metrics/baseline.json`, steered missing); this section is left out."
    )


def test_table_aligns_left_by_default_and_figure_links_relative():
    assert Table(["a", "b"], []).numeric == [False, False]
    fig = figure(Path("/tmp/x/plots.tmp"), "plots", "accuracy.png", "accuracy")
    assert fig.path == Path("/tmp/x/plots.tmp/accuracy.png") and fig.link == "plots/accuracy.png"
