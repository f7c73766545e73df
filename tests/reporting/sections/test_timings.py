"""Run time per stage."""

from __future__ import annotations

from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.sections.timings import timings_section


def test_totals_per_stage_and_stages_without_times():
    timings = {"cache": {"c.json:a.seconds": 1.25, "c.json:b.seconds": 2.0}, "select": {}}
    section = timings_section(ReportInputs(timings=timings))
    assert section.table.rows == [["cache", "3.2", "c.json:a.seconds 1.2; c.json:b.seconds 2.0"]]
    assert section.notes == ["No run time recorded by: select (DVC itself records none)."]
    assert timings_section(ReportInputs()).notes == ["No stage run times are known."]
