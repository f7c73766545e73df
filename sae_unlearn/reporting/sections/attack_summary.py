"""The attack summary: forget accuracy under every attack setting of every family, baseline
vs steered with 95% intervals, and where the steered model's gate opened."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.constants import MODELS
from sae_unlearn.reporting.document import Table, figure
from sae_unlearn.reporting.format import fmt
from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.plots import plot_accuracy

SUMMARY_PNG = "attack_summary.png"


def _row(model: str, family: str, setting: str, acc: float, ci, gate=None, recovery=None) -> dict:
    ci = list(ci) if ci else [float("nan"), float("nan")]
    return {
        "model": model,
        "label": f"{family}: {setting}",
        "family": family,
        "setting": setting,
        "acc": float(acc),
        "acc_lo": float(ci[0]),
        "acc_hi": float(ci[1]),
        "gate_share": gate,
        "recovery": recovery,
    }


def attack_rows(inputs: ReportInputs) -> pd.DataFrame:
    """One row per (model, family, setting) with an accuracy, from each family's metrics
    file (the generation family has none: its shares have a table of their own)."""
    rows = []
    for family, metrics in (inputs.attack_families or {}).items():
        for model in MODELS:
            by_setting = metrics.get(model)
            if not isinstance(by_setting, Mapping):
                continue
            recovered = (metrics.get("recovery") or {}) if model == "steered" else {}
            for setting, fig in by_setting.items():
                if not isinstance(fig, Mapping) or "acc" not in fig:
                    continue
                gate, ci = fig.get("gate_share"), fig.get("acc_ci")
                rows.append(
                    _row(model, family, setting, fig["acc"], ci, gate, recovered.get(setting))
                )
    return pd.DataFrame(rows)


def _cell(row: pd.Series | None) -> str:
    if row is None:
        return "–"
    return f"{fmt(row['acc'], 3)} [{fmt(row['acc_lo'], 3)}, {fmt(row['acc_hi'], 3)}]"


def _optional(value) -> str:
    return fmt(value, 3) if value is not None and not pd.isna(value) else "–"


def summary_table(rows: pd.DataFrame) -> Table:
    """attack, setting, baseline and steered accuracy [95% interval], steered gate share,
    and the white-box attacks' recovery (attacked - steered) / (baseline - steered)."""
    table_rows = []
    for label in dict.fromkeys(rows["label"]):
        part = rows[rows["label"] == label]
        by_model = {r["model"]: r for _, r in part.iterrows()}
        steered = by_model.get("steered")
        gate = None if steered is None else steered["gate_share"]
        recovered = None if steered is None else steered.get("recovery")
        first = part.iloc[0]
        table_rows.append(
            [first["family"], first["setting"]]
            + [_cell(by_model.get(m)) for m in MODELS]
            + [_optional(gate), _optional(recovered)]
        )
    headers = ["attack", "setting", "baseline forget acc", "steered forget acc", "gate open"]
    headers.append("recovery")
    return Table(headers, table_rows, [False, False, True, True, True, True])


def strongest_attack(rows: pd.DataFrame) -> str | None:
    """The setting under which the steered model answers most forget questions."""
    steered = rows[rows["model"] == "steered"]
    if not len(steered):
        return None
    top = steered.loc[steered["acc"].idxmax()]
    text = f"strongest: {top['label']} {fmt(float(top['acc']), 3)}"
    base = rows[(rows["model"] == "baseline") & (rows["label"] == top["label"])]
    if len(base):
        text += f" (baseline {fmt(float(base['acc'].iloc[0]), 3)})"
    return text


def summary_figure(rows: pd.DataFrame, plots: Path, link: str, data: dict):
    """attack_summary.png and its data (attack_summary.csv)."""
    plot_accuracy(
        rows, "acc", plots / SUMMARY_PNG, "Forget accuracy under attack: baseline vs steered"
    )
    data["attack_summary.csv"] = rows
    return figure(plots, link, SUMMARY_PNG, "forget accuracy per attack and setting")
