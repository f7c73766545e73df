"""Attack curves: forget and retain accuracy along the relearning fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.constants import MODELS
from sae_unlearn.reporting.document import figure
from sae_unlearn.reporting.plots import plot_lines

RELEARN_PNG = "relearn.png"


def relearn_frame(metrics: Mapping) -> pd.DataFrame:
    """step, then `{model} forget` and `{model} retain` accuracy, from `step=<s>` settings."""
    rows: dict[int, dict] = {}
    for model in MODELS:
        for setting, fig in (metrics.get(model) or {}).items():
            if not str(setting).startswith("step="):
                continue
            row = rows.setdefault(int(str(setting).removeprefix("step=")), {})
            row[f"{model} forget"] = fig.get("acc")
            row[f"{model} retain"] = fig.get("retain_acc")
    frame = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    return frame.rename_axis("step").reset_index()


def relearn_figure(metrics: Mapping, plots: Path, link: str, data: dict):
    """relearn.png and relearn.csv, or None when the metrics hold no steps."""
    frame = relearn_frame(metrics)
    if not len(frame):
        return None
    columns = [c for c in frame.columns if c != "step"]
    title = "Relearning: accuracy along the fine-tuning"
    plot_lines(frame, "step", columns, plots / RELEARN_PNG, title, "accuracy")
    data["relearn.csv"] = frame
    return figure(plots, link, RELEARN_PNG, "forget and retain accuracy per fine-tuning step")
