"""Why benign questions failed: the tokens at which the steered model's gate opened on the
retain roles (evaluate's per-question results, `gate_opened` and `gate_token`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from sae_unlearn.reporting.constants import BENIGN_ROLES
from sae_unlearn.reporting.document import Table, missing
from sae_unlearn.reporting.format import Rich, fmt
from sae_unlearn.reporting.inputs import ReportInputs

TOP_TOKENS = 10  # per role
NOTE = (
    "The gate opened on a question when it was open at any scored position of its prompt or "
    "of a choice; its token is the prompt token where it first opened (clamps without a gate: "
    "the first token the hook edited). Counts are questions."
)


@dataclass
class GateTokens:
    summary: Table | None = None  # per role: questions, gate opened, in the prompt
    table: Table | None = None  # per role: the tokens that opened it most often
    notes: list[Rich] = field(default_factory=list)


def gate_frames(results: Mapping[str, pd.DataFrame] | None) -> dict[str, pd.DataFrame]:
    """The benign roles' per-question results that record the gate, in role order."""
    results = results or {}
    return {
        role: results[role]
        for role in BENIGN_ROLES
        if role in results and {"gate_opened", "gate_token"} <= set(results[role].columns)
    }


def token_counts(frame: pd.DataFrame, top: int = TOP_TOKENS) -> list[tuple[str, int]]:
    """(token, questions) for the tokens where the gate first opened in the most prompts;
    ties by token text."""
    tokens = frame["gate_token"].dropna().astype(str)
    counts = tokens.value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), item[0]))
    return [(token, int(n)) for token, n in ranked[:top]]


def summary_table(frames: Mapping[str, pd.DataFrame]) -> Table:
    rows: list[list[Rich]] = []
    for role, frame in frames.items():
        n = len(frame)
        opened = int(frame["gate_opened"].sum())
        in_prompt = int(frame["gate_token"].notna().sum())
        share = fmt(opened / n) if n else "–"
        rows.append([role, fmt(n), fmt(opened), share, fmt(in_prompt)])
    headers = ["set", "questions", "gate opened", "share", "opened in the prompt"]
    return Table(headers, rows, [False, True, True, True, True])


def tokens_table(frames: Mapping[str, pd.DataFrame]) -> Table | None:
    rows: list[list[Rich]] = []
    for role, frame in frames.items():
        n = len(frame)
        for rank, (token, count) in enumerate(token_counts(frame), start=1):
            rows.append([role, fmt(rank), [("code", repr(token))], fmt(count), fmt(count / n)])
    if not rows:
        return None
    headers = ["set", "rank", "token", "questions", "share of the set"]
    return Table(headers, rows, [False, True, False, True, True])


def gates_section(inputs: ReportInputs) -> GateTokens:
    if inputs.steered_results is None:
        return GateTokens(notes=[missing(inputs, "steered_results")])
    frames = gate_frames(inputs.steered_results)
    if not frames:
        note = "The steered per-question results record no gate (evaluated unsteered?)."
        return GateTokens(notes=[note])
    section = GateTokens(summary_table(frames), tokens_table(frames), [NOTE])
    if section.table is None:
        section.notes.append("The gate opened in no benign prompt.")
    return section
