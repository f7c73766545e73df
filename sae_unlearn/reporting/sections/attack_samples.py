"""Sample continuations of the generation check, marked for repetition and leakage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_unlearn.reporting.document import Table
from sae_unlearn.reporting.format import Rich, fmt, visible


def samples_table(suffixes: Any, max_text: int) -> Table | None:
    """question, setting, continuation, perplexity, repetitive, names the answer: one row
    per (sample, setting) of `suffixes.json`'s `samples`; None when there are none."""
    samples = suffixes.get("samples") if isinstance(suffixes, Mapping) else None
    rows: list[list[Rich]] = []
    for sample in samples or []:
        question = str(sample.get("question", ""))
        for setting, cont in sample.items():
            if not isinstance(cont, Mapping) or "continuation" not in cont:
                continue
            text = str(cont["continuation"])
            shown = text if len(text) <= max_text else text[:max_text] + " …"
            rows.append(
                [
                    question,
                    setting,
                    [("code", visible(shown))],
                    fmt(cont.get("perplexity"), 2),
                    fmt(cont.get("repetitive")),
                    fmt(cont.get("names_answer")),
                ]
            )
    if not rows:
        return None
    headers = ["question", "setting", "continuation", "perplexity", "repetitive", "names answer"]
    return Table(headers, rows, [False, False, False, True, False, False])
