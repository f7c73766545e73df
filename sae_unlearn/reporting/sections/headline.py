"""The results card the report opens with, and its one figure (accuracy per subject)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.constants import ROLES
from sae_unlearn.reporting.document import Figure, Table, figure
from sae_unlearn.reporting.format import Rich, fmt, fmt_ci
from sae_unlearn.reporting.inputs import ReportInputs, primary_metric
from sae_unlearn.reporting.plots import accuracy_figure
from sae_unlearn.reporting.sections.accuracy import present_models
from sae_unlearn.reporting.sections.attacks import fewshot_frame


@dataclass
class Headline:
    metric: str
    table: Table | None = None  # forget / retain accuracy, baseline and steered
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    figure: Figure | None = None
    notes: list[Rich] = field(default_factory=list)


def results_table(models: Mapping[str, Mapping], metric: str) -> Table | None:
    rows: list[list[Rich]] = []
    for role in ROLES:
        groups = [metrics.get(role) for metrics in models.values()]
        if not any(isinstance(g, Mapping) and metric in g for g in groups):
            continue
        cells = [
            fmt_ci(g[metric], g.get(f"{metric}_ci"))
            if isinstance(g, Mapping) and metric in g
            else "–"
            for g in groups
        ]
        rows.append([f"{role} {metric} [95% CI]"] + cells)
    if not rows:
        return None
    return Table(["result"] + list(models), rows, [False] + [True] * len(models))


def fewshot_worst_case(attack: Mapping) -> str | None:
    """The few-shot count at which the steered model answers most forget questions."""
    fs = fewshot_frame(attack)
    if "steered" not in fs or fs["steered"].isna().all():
        return None
    worst = fs.loc[fs["steered"].idxmax()]
    text = f"few-shot worst case {fmt(float(worst['steered']))} at k={int(worst['k'])}"
    if "baseline" in fs and not pd.isna(worst["baseline"]):
        text += f" (baseline {fmt(float(worst['baseline']))})"
    return text


def gcg_summary(attack: Mapping) -> str | None:
    steered = (attack.get("gcg") or {}).get("steered") or {}
    if "acc" not in steered:
        return None
    text = f"GCG suffix {fmt(steered['acc'])}"
    if "acc_no_suffix" in steered:
        text += f" ({fmt(steered['acc_no_suffix'])} without it)"
    return text


def attack_summary(inputs: ReportInputs) -> str:
    """One line: the steered model's forget accuracy under its strongest attacks."""
    if not inputs.attack:
        return "not run yet"
    parts = [p for p in (fewshot_worst_case(inputs.attack), gcg_summary(inputs.attack)) if p]
    return "; ".join(parts) if parts else "no few-shot or GCG results"


def headline_section(
    inputs: ReportInputs, plots: Path, link: str
) -> tuple[Headline, dict[str, pd.DataFrame]]:
    metric = primary_metric(inputs)
    models = present_models(inputs)
    section = Headline(metric, results_table(models, metric) if models else None)
    if section.table is None:
        section.notes.append("No forget/retain accuracy yet: run evaluate-baseline and evaluate.")
    steered = inputs.steered or {}
    if "alignment" in steered:
        section.facts.append(("alignment", fmt(steered["alignment"])))
    if "retain_ratio" in steered:
        ratio = f"{fmt(steered['retain_ratio'])} (steered / baseline retain {metric})"
        section.facts.append(("retain ratio", ratio))
    # The attack stages score plain accuracy, whatever the primary metric.
    section.facts.append(("attacks (steered forget acc)", attack_summary(inputs)))
    data = accuracy_figure(inputs.baseline, inputs.steered, metric, plots / "accuracy.png")
    if data:
        section.figure = figure(plots, link, "accuracy.png", "accuracy per subject")
    return section, data
