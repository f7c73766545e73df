"""Run time per stage, as the stages recorded it in their JSON outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sae_unlearn.reporting.document import Table
from sae_unlearn.reporting.format import Rich
from sae_unlearn.reporting.inputs import ReportInputs


@dataclass
class Timings:
    table: Table | None = None
    notes: list[Rich] = field(default_factory=list)


def timings_section(inputs: ReportInputs) -> Timings:
    section = Timings()
    timings = inputs.timings or {}
    rows: list[list[Rich]] = []
    without = []
    for stage, values in timings.items():
        if values:
            total = sum(values.values())
            detail = "; ".join(f"{k} {v:.1f}" for k, v in values.items())
            rows.append([stage, f"{total:.1f}", detail])
        else:
            without.append(stage)
    if rows:
        section.table = Table(["stage", "seconds", "recorded as"], rows, [False, True, False])
    if without:
        section.notes.append(
            f"No run time recorded by: {', '.join(without)} (DVC itself records none)."
        )
    if not timings:
        section.notes.append("No stage run times are known.")
    return section
