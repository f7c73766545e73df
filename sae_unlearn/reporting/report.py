"""The run report: every section's data, its plots, and the two renderings written out.

Every input is optional: a missing one leaves its section out with a one-line note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sae_unlearn.io import atomic_path, write_text
from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.render import render_html, render_markdown
from sae_unlearn.reporting.sections.accuracy import (
    Accuracy,
    Alignment,
    accuracy_section,
    alignment_section,
)
from sae_unlearn.reporting.sections.attacks import Attacks, attacks_section
from sae_unlearn.reporting.sections.gates import GateTokens, gates_section
from sae_unlearn.reporting.sections.headline import Headline, headline_section
from sae_unlearn.reporting.sections.latents import SelectedLatents, latents_section
from sae_unlearn.reporting.sections.setup import SaeQuality, Setup, sae_section, setup_section


@dataclass
class Report:
    """What the templates render, section by section in report order."""

    title: str
    headline: Headline
    setup: Setup
    sae: SaeQuality
    latents: SelectedLatents
    accuracy: Accuracy
    alignment: Alignment
    gates: GateTokens
    attacks: Attacks


def build_report(
    inputs: ReportInputs, plots: Path, link: str = "plots", opts: ReportOptions | None = None
) -> tuple[Report, dict[str, pd.DataFrame]]:
    """The report's sections; PNGs go to `plots`, and the plot data comes back as frames
    keyed by file name (the caller writes them next to the PNGs)."""
    opts = opts or ReportOptions()
    plots.mkdir(parents=True, exist_ok=True)
    headline, data = headline_section(inputs, plots, link)
    latents, more = latents_section(inputs, opts, plots, link)
    data.update(more)
    attacks, more = attacks_section(inputs, opts, plots, link)
    data.update(more)
    report = Report(
        title=opts.title,
        headline=headline,
        setup=setup_section(inputs),
        sae=sae_section(inputs),
        latents=latents,
        accuracy=accuracy_section(inputs),
        alignment=alignment_section(inputs),
        gates=gates_section(inputs),
        attacks=attacks,
    )
    return report, data


def write_report(
    inputs: ReportInputs, out_dir: str | Path, opts: ReportOptions | None = None
) -> dict[str, Path]:
    """`out_dir/report.md`, `out_dir/report.html` and `out_dir/plots/` (PNGs + plot data).

    The plots directory is built aside and renamed into place whole, so a failed run
    never leaves a mix of old and new plots.
    """
    opts = opts or ReportOptions()
    out = Path(out_dir)
    with atomic_path(out / "plots") as tmp:
        tmp.mkdir(parents=True)
        report, data = build_report(inputs, tmp, "plots", opts)
        for name, frame in data.items():
            frame.to_csv(tmp / name, index=False, float_format="%.6g")
        # Both rendered before the rename: the HTML reads the PNGs from `tmp`.
        html_text = render_html(report)
        markdown = render_markdown(report)
    write_text(out / "report.md", markdown)
    write_text(out / "report.html", html_text)
    return {"markdown": out / "report.md", "html": out / "report.html", "plots": out / "plots"}
