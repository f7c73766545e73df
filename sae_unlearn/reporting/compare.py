"""Experiments side by side: the params that differ, forget/retain accuracy, alignment, and
the forget/retain Pareto front (table, plot and Markdown page); SAEBench's unlearning score.

With retain_near or known-correct metrics in any experiment, their columns join the table
(`retain_near_acc`, `alignment_near`, the forget/retain_near front `pareto_near` and its plot;
`forget_known_acc`, `retain_known_acc`); without, the table is as it was. `half` reads the
dev or test half's figures (choose on dev, report on test); experiments that differ only in
their seed are summarised as mean, spread and range per role."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_path, write_text
from sae_unlearn.reporting.constants import (
    CHANCE,
    PAPER_ALIGNMENT,
    PAPER_FORGET_BASELINE,
    PAPER_FORGET_STEERED,
    PAPER_RETAIN_BASELINE,
    PAPER_RETAIN_STEERED,
)
from sae_unlearn.reporting.document import Table
from sae_unlearn.reporting.format import fmt
from sae_unlearn.reporting.plots import BASELINE_COLOR, FRONT_COLOR, new_figure, save_png
from sae_unlearn.reporting.render import render


@dataclass
class Experiment:
    name: str
    params: dict[str, Any]  # flattened: {"clamp.value": -300.0, ...}
    steered: Mapping  # the steered metrics
    rev: str = ""


def pareto_front(forget: Sequence[float], retain: Sequence[float]) -> list[bool]:
    """True for points no other point dominates; lower forget and higher retain are better.

    A point is dominated when another is at least as good on both axes and strictly
    better on one; equal points therefore both stay on the front.
    """
    f = np.asarray(forget, dtype=float)
    r = np.asarray(retain, dtype=float)
    front = []
    for i in range(len(f)):
        dominated = np.any((f <= f[i]) & (r >= r[i]) & ((f < f[i]) | (r > r[i])))
        front.append(bool(not dominated and not (np.isnan(f[i]) or np.isnan(r[i]))))
    return front


def _param_text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return fmt(value, 6) if isinstance(value, float) else str(value)


HALVES = ("dev", "test")
# Params that only reseed a run: experiments differing in nothing else are one setting.
SEED_KEYS = ("seed", "sae.train.seed")


def _role_acc(steered: Mapping, role: str, metric: str, half: str | None) -> float:
    figures = steered.get(role) or {}
    if half is not None:
        figures = figures.get(half) or {}
    return float(figures[metric]) if metric in figures else float("nan")


def _alignment(steered: Mapping, key: str, half: str | None) -> float:
    figures = (steered.get(half) or {}) if half is not None else steered
    return float(figures[key]) if key in figures else float("nan")


def _known_acc(steered: Mapping, role: str) -> float:
    known = (steered.get(role) or {}).get("known_correct") or {}
    return float(known["acc"]) if "acc" in known else float("nan")


def _optional_columns(experiments: Sequence[Experiment]) -> list[str]:
    columns = []
    if any("retain_near" in e.steered for e in experiments):
        columns += ["retain_near_acc", "alignment_near"]
    if any("known_correct" in (e.steered.get("forget") or {}) for e in experiments):
        columns += ["forget_known_acc", "retain_known_acc"]
    return columns


def comparison_table(experiments: Sequence[Experiment], half: str | None = None) -> pd.DataFrame:
    """experiment, rev, the params that differ, forget/retain accuracy, alignment, front;
    retain_near (with its own front) and known-correct columns when any experiment has them.

    `half` ("dev" or "test") takes accuracy and alignment from that half of the questions;
    known-correct accuracy and retain_kept_99 are always over all questions."""
    if half is not None and half not in HALVES:
        raise UserError(f"half must be one of {list(HALVES)} or None, not {half!r}")
    keys = sorted({k for e in experiments for k in e.params})
    differ = [k for k in keys if len({_param_text(e.params.get(k, None)) for e in experiments}) > 1]
    optional = _optional_columns(experiments)
    rows = []
    for e in experiments:
        s = e.steered
        metric = str(s.get("primary_metric", "acc"))
        row: dict[str, Any] = {"experiment": e.name, "rev": e.rev[:7]}
        for k in differ:
            value = e.params.get(k)
            row[k] = _param_text(value) if isinstance(value, list | dict) else value
        row["metric"] = metric
        row["forget_acc"] = _role_acc(s, "forget", metric, half)
        row["retain_acc"] = _role_acc(s, "retain", metric, half)
        row["alignment"] = _alignment(s, "alignment", half)
        row["retain_kept_99"] = s.get("retain_kept_99")
        if "retain_near_acc" in optional:
            row["retain_near_acc"] = _role_acc(s, "retain_near", metric, half)
            row["alignment_near"] = _alignment(s, "alignment_near", half)
        if "forget_known_acc" in optional:
            row["forget_known_acc"] = _known_acc(s, "forget")
            row["retain_known_acc"] = _known_acc(s, "retain")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["pareto"] = pareto_front(frame["forget_acc"], frame["retain_acc"])
        if "retain_near_acc" in frame.columns:
            frame["pareto_near"] = pareto_front(frame["forget_acc"], frame["retain_near_acc"])
    return frame


def _param_columns(table: pd.DataFrame) -> list[str]:
    # comparison_table puts the params that differ between `rev` and `metric`.
    columns = list(table.columns)
    return columns[columns.index("rev") + 1 : columns.index("metric")]


def _joined(columns: pd.DataFrame, sep: str) -> pd.Series:
    """Each row's values as one string. Joined value by value: `astype(str).agg(join)` kept a
    float (a param missing from older commits' experiments is NaN) and failed."""
    return columns.apply(lambda row: sep.join(str(v) for v in row), axis=1)


def seed_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting run under several seeds: the seeds, and each role's mean, sample standard
    deviation, min and max accuracy. A setting is the experiments' params other than the seed
    keys; one experiment per seed counts (the first listed), so a rerun of a seed on another
    machine does not weigh twice."""
    params = _param_columns(table) if len(table) else []
    seeds = [k for k in params if k in SEED_KEYS]
    if not seeds:
        return pd.DataFrame()
    others = [k for k in params if k not in SEED_KEYS]
    roles = [c for c in ("forget_acc", "retain_acc", "retain_near_acc") if c in table.columns]
    keyed = table.assign(
        _setting=_joined(table[others], ", ") if others else "",
        _seed=_joined(table[seeds], "/"),
    ).drop_duplicates(["_setting", "_seed"])
    rows = []
    for _, group in keyed.groupby("_setting", sort=False):
        if len(group) < 2:
            continue
        label = ", ".join(f"{k}={v}" for k, v in zip(others, group[others].iloc[0], strict=True))
        row: dict[str, Any] = {"setting": label or "(all params equal)", "seeds": len(group)}
        row["seed values"] = " ".join(group["_seed"])
        for c in roles:
            values = group[c].astype(float)
            role = c.removesuffix("_acc")
            row[f"{role} mean"] = values.mean()
            row[f"{role} sd"] = values.std(ddof=1)
            row[f"{role} min"] = values.min()
            row[f"{role} max"] = values.max()
        rows.append(row)
    return pd.DataFrame(rows)


METRIC_COLUMNS = {
    "pareto_near",
    "forget_acc",
    "retain_acc",
    "alignment",
    "retain_kept_99",
    "pareto",
    "retain_near_acc",
    "alignment_near",
    "forget_known_acc",
    "retain_known_acc",
}
# SAEBench: an experiment counts while its retain known-correct accuracy is >= 0.99 of the
# baseline's (which is 1 on the questions the baseline knows).
SAEBENCH_RETAIN_KEPT = 0.99


def experiments_table(table: pd.DataFrame, metric_columns: set[str] | None = None) -> Table:
    """The comparison as the page shows it: metrics to four decimals, params as written."""
    metric_columns = METRIC_COLUMNS if metric_columns is None else metric_columns
    headers = list(table.columns)
    numeric = [
        pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
        for c in headers
    ]
    rows = [
        [fmt(v) if c in metric_columns else str(v) for c, v in zip(headers, r, strict=True)]
        for r in table.itertuples(index=False, name=None)
    ]
    return Table(headers, rows, numeric)


def saebench_best(table: pd.DataFrame) -> str | None:
    """SAEBench's view: the lowest forget accuracy among experiments keeping retain >= 99%."""
    kept = table[table["retain_kept_99"] == True]  # noqa: E712 (None/NaN rows must drop)
    if not len(kept):
        return None
    best = kept.sort_values("forget_acc", kind="mergesort").iloc[0]
    return (
        "SAEBench view: the lowest forget accuracy among experiments that keep retain "
        f"accuracy >= 99% of baseline is {fmt(best['forget_acc'])} ({best['experiment']})."
    )


def unlearning_score(table: pd.DataFrame) -> tuple[float, str | None] | None:
    """SAEBench's unlearning score: 1 - the lowest forget known-correct accuracy among the
    experiments whose retain known-correct accuracy is >= 0.99 of baseline, and the experiment;
    0 (and no experiment) when none qualifies, as in SAEBench; None without known-correct
    metrics."""
    if "forget_known_acc" not in table.columns:
        return None
    kept = table[table["retain_known_acc"] >= SAEBENCH_RETAIN_KEPT].dropna(
        subset=["forget_known_acc"]
    )
    if not len(kept):
        return 0.0, None
    best = kept.sort_values("forget_known_acc", kind="mergesort").iloc[0]
    return 1.0 - float(best["forget_known_acc"]), str(best["experiment"])


def unlearning_score_line(table: pd.DataFrame) -> str | None:
    score = unlearning_score(table)
    if score is None:
        return None
    value, name = score
    if name is None:
        return (
            "SAEBench unlearning score: 0 (no experiment keeps retain known-correct accuracy "
            ">= 0.99 of baseline)."
        )
    return (
        f"SAEBench unlearning score: {fmt(value)} ({name}): 1 - forget accuracy on the "
        "questions the baseline knows, lowest among experiments that keep retain known-correct "
        "accuracy >= 0.99 of baseline."
    )


PAPER_LINE = (
    "Paper reference (gemma-2-2b, refusal-clamp): forget "
    f"{PAPER_FORGET_BASELINE:.4f} -> {PAPER_FORGET_STEERED:.4f}, "
    f"alignment {PAPER_ALIGNMENT:.4f} (retain {PAPER_RETAIN_STEERED:.4f} "
    "derived from the alignment, not reported)."
)


def spread_table(spread: pd.DataFrame) -> Table:
    fixed = {"setting", "seeds", "seed values"}
    return experiments_table(spread, {c for c in spread.columns if c not in fixed})


def comparison_markdown(
    table: pd.DataFrame,
    plot_link: str | None,
    reference: bool,
    skipped: Sequence[str] = (),
    near_plot_link: str | None = None,
    half: str | None = None,
) -> str:
    empty = table.empty
    spread = pd.DataFrame() if empty else seed_spread(table)
    text = render(
        "compare.md.j2",
        table=None if empty else experiments_table(table),
        half=half,
        near="pareto_near" in table.columns,
        spread=None if spread.empty else spread_table(spread),
        saebench=None if empty else saebench_best(table),
        unlearning=None if empty else unlearning_score_line(table),
        paper=PAPER_LINE if reference else None,
        plot_link=plot_link,
        near_plot_link=near_plot_link if "pareto_near" in table.columns else None,
        skipped=list(skipped),
    )
    return text.rstrip() + "\n"


def pareto_plot(
    table: pd.DataFrame, path: Path, reference: bool = False, near: bool = False
) -> None:
    """Forget vs retain accuracy (`near`: vs retain_near accuracy, benign biology) of each
    experiment; the Pareto front joined and ringed. The paper has no retain_near figure, so
    its points are drawn on the retain plot only."""
    y, front_column = ("retain_near_acc", "pareto_near") if near else ("retain_acc", "pareto")
    fig = new_figure(6.5, 5.2)
    ax = fig.add_subplot()
    if len(table):
        on = table[front_column].to_numpy(bool)
        ax.scatter(
            table["forget_acc"][~on],
            table[y][~on],
            color="#888888",
            label="dominated",
            zorder=2,
        )
        front = table[on].sort_values("forget_acc")
        ax.step(
            front["forget_acc"],
            front[y],
            where="post",
            color=FRONT_COLOR,
            linewidth=1,
            zorder=1,
        )
        ax.scatter(
            front["forget_acc"],
            front[y],
            color=FRONT_COLOR,
            edgecolors="black",
            s=60,
            label="Pareto front",
            zorder=3,
        )
        for r in table.to_dict("records"):
            ax.annotate(
                str(r["experiment"]),
                (r["forget_acc"], r[y]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
            )
    if reference and not near:
        ax.scatter(
            [PAPER_FORGET_BASELINE],
            [PAPER_RETAIN_BASELINE],
            marker="s",
            color=BASELINE_COLOR,
            label="paper baseline (gemma-2-2b)",
            zorder=3,
        )
        ax.scatter(
            [PAPER_FORGET_STEERED],
            [PAPER_RETAIN_STEERED],
            marker="*",
            s=160,
            color="#55a868",
            edgecolors="black",
            label=f"paper refusal-clamp (alignment {PAPER_ALIGNMENT}; retain derived)",
            zorder=3,
        )
    ax.axvline(CHANCE, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("forget accuracy (lower is better)")
    kind = "retain_near" if near else "retain"
    ax.set_ylabel(f"{kind} accuracy (higher is better)")
    ax.set_title(f"Experiments: forget vs {kind} accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    save_png(fig, path)


def write_comparison(
    experiments: Sequence[Experiment],
    out_dir: str | Path,
    reference: bool = False,
    skipped: Sequence[str] = (),
    half: str | None = None,
) -> pd.DataFrame:
    """`compare.md`, `compare.csv`, `pareto.png` (and `pareto_near.png` with retain_near
    results) in `out_dir`; returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(experiments, half)
    with atomic_path(out / "pareto.png") as tmp:
        pareto_plot(table, tmp, reference)
    near_link = None
    if "pareto_near" in table.columns:
        near_link = "pareto_near.png"
        with atomic_path(out / near_link) as tmp:
            pareto_plot(table, tmp, near=True)
    else:
        (out / "pareto_near.png").unlink(missing_ok=True)  # from an earlier comparison
    write_text(out / "compare.csv", table.to_csv(index=False))
    markdown = comparison_markdown(table, "pareto.png", reference, skipped, near_link, half)
    write_text(out / "compare.md", markdown)
    return table
