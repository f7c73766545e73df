"""Accuracy table and alignment section."""

from __future__ import annotations

from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.sections.accuracy import (
    accuracy_section,
    accuracy_table,
    alignment_section,
)


def test_accuracy_table_per_subject_with_missing_metrics_as_dashes():
    steered = {
        "forget": {
            "acc": 0.5,
            "acc_ci": [0.25, 0.75],
            "n": 4,
            "by_subject": {"b": {"acc": 1.0, "n": 2}, "a": {"acc": 0.0, "n": 2}},
        }
    }
    table = accuracy_table({"steered": steered})
    assert table.headers == [
        "set",
        "subject",
        "n",
        "steered acc [95% CI]",
        "steered acc_norm [95% CI]",
    ]
    assert table.rows == [
        ["forget", "all", "4", "0.5000 [0.2500, 0.7500]", "–"],
        ["forget", "a", "2", "0.0000", "–"],
        ["forget", "b", "2", "1.0000", "–"],
    ]
    assert table.numeric == [False, False, True, True, True]


def test_accuracy_section_names_missing_inputs():
    inputs = ReportInputs(steered={"forget": {"acc": 0.5}}, sources={"baseline": "b.json"})
    section = accuracy_section(inputs)
    assert section.notes[0][1] == ("code", "b.json") and len(section.notes) == 1
    assert "The alignment score uses acc. Chance is 0.25." in section.legend
    empty = accuracy_section(ReportInputs())
    assert empty.table is None and "baseline, steered" in "".join(t for _, t in empty.notes[0])


def test_alignment_rows_and_paper_reference():
    steered = {"alignment": 0.5, "r_forget": 0.25, "retain_kept_99": True, "other": 1}
    params = {"model": {"name": "google/gemma-2-2b"}}
    section = alignment_section(ReportInputs(steered=steered, params=params))
    assert section.table.rows == [
        ["alignment", "0.5000"],
        ["r_forget", "0.2500"],
        ["retain_kept_99", "yes"],
    ]
    assert section.paper.startswith("Paper reference (gemma-2-2b, refusal-clamp): WMDP-bio 0.5860")
    no_score = alignment_section(ReportInputs(steered={"forget": {}}))
    assert no_score.table is None and "no alignment score" in no_score.notes[0]
