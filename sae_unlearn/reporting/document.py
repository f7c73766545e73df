"""The pieces the templates lay out: tables, figures and one-line notes (rich text)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sae_unlearn.reporting.format import Rich, Span
from sae_unlearn.reporting.inputs import ReportInputs


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Rich]]
    numeric: list[bool] | None = None  # right-align these columns

    def __post_init__(self) -> None:
        if self.numeric is None:
            self.numeric = [False] * len(self.headers)


@dataclass
class Figure:
    path: Path  # the PNG on disk, read when the HTML inlines it
    link: str  # its path relative to the markdown file
    caption: str


def figure(plots: Path, link: str, name: str, caption: str) -> Figure:
    return Figure(plots / name, f"{link}/{name}", caption)


def missing(inputs: ReportInputs, *names: str) -> Rich:
    """Why a section is left out: which input files do not exist yet."""
    spans: list[Span] = [("", "Not available yet (")]
    for i, name in enumerate(names):
        spans += [("", ", ")] if i else []
        spans.append(("code", inputs.sources[name]) if name in inputs.sources else ("", name))
    return spans + [("", " missing); this section is left out.")]
