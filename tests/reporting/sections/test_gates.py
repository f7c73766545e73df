"""The gate-token section: per benign role, how often the gate opened, and the prompt tokens
that opened it most often, counted by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import report
from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.sections.gates import gates_section, token_counts
from tests.reporting.helpers import run, table_with


def frame(opened: list[bool], tokens: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"gate_opened": opened, "gate_token": pd.array(tokens, dtype="string")})


RESULTS = {
    "forget": frame([True] * 3, [" virus"] * 3),  # not a benign role: left out
    "retain": frame([True, True, True, False, True], [" flu", " cold", " flu", None, None]),
    "retain_contaminated": frame([True] * 4, [" fever", " flu", " fever", " fever"]),
}


def test_tokens_counted_and_ranked_by_questions_then_text():
    assert token_counts(RESULTS["retain"]) == [(" flu", 2), (" cold", 1)]
    assert token_counts(RESULTS["retain_contaminated"], top=1) == [(" fever", 3)]


def test_section_lists_every_benign_role_with_its_tokens():
    section = gates_section(ReportInputs(steered_results=RESULTS))
    assert section.summary.rows == [
        ["retain", "5", "4", "0.8000", "3"],
        ["retain_contaminated", "4", "4", "1.0000", "4"],
    ]
    assert section.table.rows == [
        ["retain", "1", [("code", "' flu'")], "2", "0.4000"],
        ["retain", "2", [("code", "' cold'")], "1", "0.2000"],
        ["retain_contaminated", "1", [("code", "' fever'")], "3", "0.7500"],
        ["retain_contaminated", "2", [("code", "' flu'")], "1", "0.2500"],
    ]


def test_section_says_why_it_is_empty():
    missing = gates_section(ReportInputs(sources={"steered_results": "data/results/steered"}))
    assert missing.summary is None and "data/results/steered" in str(missing.notes[0])
    plain = {"retain": pd.DataFrame({"correct": [True]})}
    unsteered = gates_section(ReportInputs(steered_results=plain))
    assert unsteered.summary is None and "record no gate" in unsteered.notes[0]
    shut = gates_section(ReportInputs(steered_results={"retain": frame([False], [None])}))
    assert shut.table is None and shut.summary.rows == [["retain", "1", "0", "0.0000", "0"]]
    assert shut.notes[-1] == "The gate opened in no benign prompt."


def test_report_renders_the_gate_tokens_in_markdown_and_html(project: Path):
    folder = project / "data/results/steered"
    folder.mkdir(parents=True)
    for role, results in RESULTS.items():
        results.to_parquet(folder / f"{role}.parquet")
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    assert "## Where the gate opened on benign questions" in md
    rows = table_with(md, "opened in the prompt")
    assert [(r["set"], r["gate opened"], r["share"]) for r in rows] == [
        ("retain", "4", "0.8000"),
        ("retain_contaminated", "4", "1.0000"),
    ]
    tokens = table_with(md, "token")
    assert [(r["set"], r["token"], r["questions"]) for r in tokens] == [
        ("retain", "`' flu'`", "2"),
        ("retain", "`' cold'`", "1"),
        ("retain_contaminated", "`' fever'`", "3"),
        ("retain_contaminated", "`' flu'`", "1"),
    ]
    page = (project / "reports/report.html").read_text()
    assert "<h2>Where the gate opened on benign questions</h2>" in page
    assert '<td class="num">3</td>' in page and "<code>&#x27; fever&#x27;</code>" in page
