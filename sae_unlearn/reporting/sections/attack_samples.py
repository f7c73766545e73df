"""Sample continuations of the generation check, marked for repetition and leakage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_unlearn.reporting.document import Table
from sae_unlearn.reporting.format import Rich, fmt, visible


def _settings(samples: Any):
    """(question, "<model> <setting>", continuation record) from `model -> samples`."""
    if not isinstance(samples, Mapping):
        return
    for model, listed in samples.items():
        for sample in listed if isinstance(listed, list) else []:
            for setting, cont in sample.items():
                if isinstance(cont, Mapping) and "continuation" in cont:
                    yield str(sample.get("question", "")), f"{model} {setting}", cont


def samples_table(samples: Any, max_text: int) -> Table | None:
    """question, setting, continuation, perplexity, repetitive, names the answer: one row
    per (sample, model and setting) of the generation family's `samples.json`; None when
    there are none."""
    rows: list[list[Rich]] = []
    for question, setting, cont in sorted(_settings(samples), key=lambda r: r[0]):
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
