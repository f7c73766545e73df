"""The report's figures (PNG) and the data behind each (CSV, which DVC's plots read).

Figures are drawn with matplotlib's Agg canvas on `Figure` objects (no pyplot state, no
display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sae_unlearn.reporting.constants import CHANCE, MODELS, ROLES

BASELINE_COLOR, STEERED_COLOR, FRONT_COLOR = "#4c72b0", "#dd8452", "#c44e52"


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    # No "Software" metadata: the same data gives byte-identical PNGs across matplotlib
    # versions, so DVC sees no change when nothing changed.
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


# --- accuracy -----------------------------------------------------------------------------


def accuracy_rows(baseline: Mapping | None, steered: Mapping | None, metric: str) -> pd.DataFrame:
    """One row per (model, set, subject): pooled first, then each subject."""
    rows = []
    for model, metrics in (("baseline", baseline), ("steered", steered)):
        if not metrics:
            continue
        for role in ROLES:
            if role not in metrics:
                continue
            groups = [("all", metrics[role])]
            groups += sorted((metrics[role].get("by_subject") or {}).items())
            for subject, m in groups:
                ci = m.get(f"{metric}_ci") or [float("nan"), float("nan")]
                rows.append(
                    {
                        "model": model,
                        "label": f"{role}: {subject}",
                        "role": role,
                        "subject": subject,
                        metric: float(m[metric]),
                        f"{metric}_lo": float(ci[0]),
                        f"{metric}_hi": float(ci[1]),
                        "n": int(m.get("n", 0)),
                    }
                )
    return pd.DataFrame(rows)


def plot_accuracy(
    rows: pd.DataFrame,
    metric: str,
    path: Path,
    title: str = "Accuracy per subject: baseline vs steered",
) -> None:
    labels = list(dict.fromkeys(rows["label"]))
    models = [m for m in MODELS if m in set(rows["model"])]
    fig = new_figure(7.5, 1.2 + 0.45 * len(labels) * max(1, len(models)) / 1.5)
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(models))
    y = np.arange(len(labels))
    for i, model in enumerate(models):
        part = rows[rows["model"] == model].set_index("label").reindex(labels)
        value = part[metric].to_numpy(float)
        err = np.vstack([value - part[f"{metric}_lo"], part[f"{metric}_hi"] - value])
        offset = (i - (len(models) - 1) / 2) * height
        ax.barh(
            y + offset,
            value,
            height,
            xerr=np.nan_to_num(np.abs(err)),
            color=BASELINE_COLOR if model == "baseline" else STEERED_COLOR,
            label=model,
            capsize=3,
        )
    ax.axvline(CHANCE, color="grey", linestyle="--", linewidth=1, label=f"chance ({CHANCE})")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"{metric} (95% bootstrap interval)")
    ax.set_title(title)
    # Below the axes: inside, it would hide bars and intervals.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize="small")
    save_png(fig, path)


def accuracy_figure(
    baseline: Mapping | None, steered: Mapping | None, metric: str, path: Path
) -> dict[str, pd.DataFrame]:
    """Draws `path` and returns accuracy_{model}.csv frames; nothing when there is no data."""
    acc = accuracy_rows(baseline, steered, metric)
    if not len(acc):
        return {}
    plot_accuracy(acc, metric, path)
    # Fixed column names whichever metric is primary, so dvc.yaml's plots need no edit.
    names = {metric: "accuracy", f"{metric}_lo": "ci_low", f"{metric}_hi": "ci_high"}
    table = acc.rename(columns=names).assign(metric=metric)
    cols = ["label", "role", "subject", "metric", "accuracy", "ci_low", "ci_high", "n"]
    present = [m for m, metrics in (("baseline", baseline), ("steered", steered)) if metrics]
    return {f"accuracy_{m}.csv": table[table["model"] == m][cols] for m in present}


# --- latents ------------------------------------------------------------------------------


def plot_latents(
    stats: pd.DataFrame,
    selected: Sequence[int],
    path: Path,
    retain_threshold: float | None = None,
) -> float:
    """Forget vs benign firing frequency, log axes, one panel per benign corpus (retain, and
    retain_near when scored); returns the floor zeros are drawn at."""
    benign = [c for c in ("retain", "retain_near") if f"{c}_freq" in stats.columns]
    freqs = {c: stats[f"{c}_freq"].to_numpy(float) for c in ["forget", *benign]}
    positive = np.concatenate([f[f > 0] for f in freqs.values()])
    # Log axes cannot show 0; latents that never fire on a corpus sit on a floor line
    # half a decade below the smallest observed frequency.
    floor = float(10 ** (math.floor(math.log10(positive.min())) - 0.5)) if len(positive) else 1e-6
    y = np.maximum(freqs["forget"], floor)
    mask = stats["latent"].isin(list(selected)).to_numpy()
    fig = new_figure(6.5 * len(benign), 5.5)
    for n, corpus in enumerate(benign):
        ax = fig.add_subplot(1, len(benign), n + 1)
        x = np.maximum(freqs[corpus], floor)
        ax.scatter(x, y, s=6, alpha=0.35, color="#888888", linewidths=0, label="latents")
        ax.scatter(
            x[mask],
            y[mask],
            s=40,
            color=FRONT_COLOR,
            edgecolors="black",
            label="selected",
            zorder=3,
        )
        latents = stats["latent"].to_numpy()[mask]
        for lat, xi, yi in zip(latents, x[mask], y[mask], strict=True):
            ax.annotate(
                str(int(lat)), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7
            )
        if retain_threshold:
            ax.axvline(retain_threshold, color="grey", linestyle="--", linewidth=1)
            ax.text(retain_threshold, floor, " retain threshold", fontsize=7, color="grey")
        ax.plot([floor, 1], [floor, 1], color="#bbbbbb", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{corpus} firing frequency (0 drawn at {floor:.1g})")
        ax.set_ylabel(f"forget firing frequency (0 drawn at {floor:.1g})")
        ax.set_title(f"SAE latents: forget vs {corpus} frequency")
        ax.legend(loc="lower right", fontsize="small")
    save_png(fig, path)
    return floor


def latents_figure(
    latents: pd.DataFrame, chosen: Sequence[int], retain_threshold: float | None, path: Path
) -> dict[str, pd.DataFrame]:
    """Draws `path`; returns latent_freqs.csv and selected_latents.csv."""
    floor = plot_latents(latents, chosen, path, retain_threshold)
    columns = [c for c in ("forget_freq", "retain_freq", "retain_near_freq") if c in latents]
    freqs = latents[["latent", *columns]].copy()
    # Only latents that fire somewhere: a 16k-latent SAE has many dead ones.
    freqs = freqs[(freqs[columns] > 0).any(axis=1)]
    # log10 columns (zeros at the plot's floor) so DVC's linear-axis templates show
    # the same picture as the log-axis PNG.
    for c in columns:
        freqs[f"log10_{c}"] = np.log10(np.maximum(freqs[c].to_numpy(float), floor))
    freqs["selected"] = freqs["latent"].isin(chosen)
    return {"latent_freqs.csv": freqs, "selected_latents.csv": freqs[freqs["selected"]]}


# --- curves -------------------------------------------------------------------------------


def plot_lines(
    frame: pd.DataFrame, x: str, columns: Sequence[str], path: Path, title: str, ylabel: str
) -> None:
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    for column in columns:
        color = {"baseline": BASELINE_COLOR, "steered": STEERED_COLOR}.get(column)
        ax.plot(
            frame[x],
            frame[column],
            marker="o" if len(frame) < 30 else None,
            label=column,
            color=color,
        )
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_png(fig, path)
