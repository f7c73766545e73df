"""The results card the report opens with, and its one figure (accuracy per subject).

The card has one row per role the run scored (forget, retain, retain_near and the
contaminated retain roles): accuracy with its interval per model, the same on the test half
(the questions a setting tuned on dev never saw), and the known-correct accuracy."""

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
from sae_unlearn.reporting.sections.attack_summary import attack_rows, strongest_attack
from sae_unlearn.reporting.sections.attacks import fewshot_frame


@dataclass
class Headline:
    metric: str
    table: Table | None = None  # every role's accuracy, baseline and steered
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    figure: Figure | None = None
    notes: list[Rich] = field(default_factory=list)


def _value(group, metric: str) -> Rich:
    """`metric` with its interval, or a dash where the group lacks it."""
    if isinstance(group, Mapping) and metric in group:
        return fmt_ci(group[metric], group.get(f"{metric}_ci"))
    return "–"


def results_table(models: Mapping[str, Mapping], metric: str) -> Table | None:
    """One row per role the metrics hold: its accuracy per model with the interval, the
    same on the test half, and the steered accuracy on the questions the baseline knows."""
    headers = ["set", "n"] + [f"{m} {metric} [95% CI]" for m in models]
    headers += [f"{m} test half" for m in models] + ["known", "steered known-correct acc"]
    rows: list[list[Rich]] = []
    for role in ROLES:
        groups = {m: metrics.get(role) for m, metrics in models.items()}
        if not any(isinstance(g, Mapping) and metric in g for g in groups.values()):
            continue
        present = [g for g in groups.values() if isinstance(g, Mapping)]
        known = [(g.get("known_correct") or {}) for g in present]
        n_known = next((k["n"] for k in known if "n" in k), None)
        steered_known = (groups.get("steered") or {}).get("known_correct") or {}
        rows.append(
            [role, fmt(next((g["n"] for g in present if "n" in g), None))]
            + [_value(g, metric) for g in groups.values()]
            + [_value((g or {}).get("test"), metric) for g in groups.values()]
            + [fmt(n_known), _value(steered_known, "acc")]
        )
    if not rows:
        return None
    return Table(headers, rows, [False] + [True] * (len(headers) - 1))


def fewshot_worst_case(fewshot: Mapping) -> str | None:
    """The few-shot count at which the steered model answers most forget questions."""
    fs = fewshot_frame(fewshot)
    if "steered" not in fs or fs["steered"].isna().all():
        return None
    worst = fs.loc[fs["steered"].idxmax()]
    text = f"few-shot worst case {fmt(float(worst['steered']))} at k={int(worst['k'])}"
    if "baseline" in fs and not pd.isna(worst["baseline"]):
        text += f" (baseline {fmt(float(worst['baseline']))})"
    return text


def gcg_summary(gcg: Mapping) -> str | None:
    steered = gcg.get("steered") or {}
    if "acc" not in (steered.get("suffix") or {}):
        return None
    text = f"GCG suffix {fmt(steered['suffix']['acc'])}"
    if "acc" in (steered.get("none") or {}):
        text += f" ({fmt(steered['none']['acc'])} without it)"
    return text


def attack_summary(inputs: ReportInputs) -> str:
    """One line: the steered model's forget accuracy under its strongest attacks."""
    rows = attack_rows(inputs)
    strongest = strongest_attack(rows) if len(rows) else None
    families = inputs.attack_families or {}
    parts = [
        fewshot_worst_case(families["fewshot"]) if "fewshot" in families else None,
        gcg_summary(families["gcg"]) if "gcg" in families else None,
        strongest,
    ]
    parts = [p for p in parts if p]
    return "; ".join(parts) if parts else "not run yet"


def headline_section(
    inputs: ReportInputs, plots: Path, link: str
) -> tuple[Headline, dict[str, pd.DataFrame]]:
    metric = primary_metric(inputs)
    models = present_models(inputs)
    section = Headline(metric, results_table(models, metric) if models else None)
    if section.table is None:
        section.notes.append("No accuracy yet: run evaluate-baseline and evaluate.")
    steered = inputs.steered or {}
    for key in ("alignment", "alignment_near"):
        if key in steered:
            section.facts.append((key.replace("_", " "), fmt(steered[key])))
    for role in ROLES[1:]:  # retain, retain_near, the contaminated roles
        if f"{role}_ratio" in steered:
            ratio = f"{fmt(steered[f'{role}_ratio'])} (steered / baseline {role} {metric})"
            section.facts.append((f"{role.replace('_', ' ')} ratio", ratio))
    # The attack stages score plain accuracy, whatever the primary metric.
    section.facts.append(("attacks (steered forget acc)", attack_summary(inputs)))
    data = accuracy_figure(inputs.baseline, inputs.steered, metric, plots / "accuracy.png")
    if data:
        section.figure = figure(plots, link, "accuracy.png", "accuracy per subject")
    return section, data
