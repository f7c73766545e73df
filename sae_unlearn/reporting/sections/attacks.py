"""Attacks: the summary over every family, the relearning curve, the few-shot curve, GCG
(budget, losses), the generation check and its samples, the found suffixes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sae_unlearn.reporting.constants import MODELS
from sae_unlearn.reporting.document import Figure, Table, figure, missing
from sae_unlearn.reporting.format import Rich, flatten, fmt, visible
from sae_unlearn.reporting.inputs import (
    FAMILY_INPUTS,
    ReportInputs,
    ReportOptions,
    is_timing_key,
)
from sae_unlearn.reporting.plots import plot_lines
from sae_unlearn.reporting.sections.attack_curves import relearn_figure
from sae_unlearn.reporting.sections.attack_samples import samples_table
from sae_unlearn.reporting.sections.attack_summary import (
    attack_rows,
    summary_figure,
    summary_table,
)


def _acc_value(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("acc")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fewshot_frame(fewshot: Mapping) -> pd.DataFrame:
    """k, baseline, steered (accuracy) from the fewshot family's `{model}.k={k}` settings."""
    by_model = {
        m: {int(str(s).removeprefix("k=")): fig for s, fig in (fewshot.get(m) or {}).items()}
        for m in MODELS
        if isinstance(fewshot.get(m), Mapping)
    }
    ks = sorted({k for settings in by_model.values() for k in settings})
    frame = pd.DataFrame({"k": ks})
    for m, settings in by_model.items():
        frame[m] = [_acc_value(settings.get(k)) for k in ks]
    return frame


def gcg_wide(losses: Mapping) -> pd.DataFrame:
    """step, baseline, steered from `model -> loss per step` (index 0: the initial loss)."""
    present = [m for m in MODELS if m in losses] + [m for m in losses if m not in MODELS]
    steps = max((len(losses[m]) for m in present), default=0)
    frame = pd.DataFrame({"step": range(steps)})
    for m in present:
        values = list(losses[m])
        frame[m] = values + [float("nan")] * (steps - len(values))
    return frame


def text_leaves(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string in a JSON structure with its key path (lists indexed)."""
    if isinstance(data, str):
        return [(prefix or "value", data)]
    if isinstance(data, Mapping):
        out = []
        for k, v in data.items():
            out += text_leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(data, list):
        out = []
        for i, v in enumerate(data):
            out += text_leaves(v, f"{prefix}[{i}]")
        return out
    return []


@dataclass
class Part:
    """A titled subsection: tables, a figure and notes, in the order the template shows."""

    title: str
    table: Table | None = None
    figure: Figure | None = None
    notes: list[Rich] = field(default_factory=list)
    extra_figures: list[Figure] = field(default_factory=list)


@dataclass
class Attacks:
    parts: list[Part] = field(default_factory=list)
    notes: list[Rich] = field(default_factory=list)  # why there are no parts


def _fewshot_part(fewshot: Mapping, plots: Path, link: str, data: dict) -> Part:
    part = Part("Few-shot")
    fs = fewshot_frame(fewshot)
    if not len(fs):
        part.notes.append("The few-shot metrics carry no results.")
        return part
    present = [m for m in MODELS if m in fs]
    rows = [[fmt(int(r["k"]))] + [fmt(r[m]) for m in present] for r in fs.to_dict("records")]
    headers = ["k"] + [f"{m} forget acc" for m in present]
    part.table = Table(headers, rows, [True] * len(headers))
    title = "Forget accuracy vs few-shot examples"
    plot_lines(fs, "k", present, plots / "fewshot.png", title, "forget accuracy")
    data["fewshot.csv"] = fs
    part.figure = figure(plots, link, "fewshot.png", "few-shot accuracy")
    return part


# nanoGCG's defaults, which the paper ran
PAPER_GCG = {"num_steps": 500, "search_width": 64, "topk": 64}


def gcg_budget(suffixes: Any) -> str | None:
    """Which GCG budget the run used (from `suffixes.json`), beside the paper's."""
    cfg = suffixes.get("gcg_config") if isinstance(suffixes, Mapping) else None
    if not isinstance(cfg, Mapping) or not all(k in cfg for k in PAPER_GCG):
        return None
    n = len(suffixes.get("target_questions") or [])
    used = f"{cfg['num_steps']} steps, search width {cfg['search_width']}, top-k {cfg['topk']}"
    if all(cfg[k] == v for k, v in PAPER_GCG.items()):
        return f"GCG budget: {used} over {n} questions: the paper's."
    overrides = " ".join(f"-S attack.gcg.{k}={v}" for k, v in PAPER_GCG.items())
    return (
        f"GCG budget: {used} over {n} questions, lighter than the paper's (500 steps, width "
        f"64, top-k 64); the paper's budget is `dvc exp run {overrides}`."
    )


def gcg_budget_frame(search: Mapping) -> pd.DataFrame:
    """step, baseline, steered: accuracy with the suffix held at each evaluated step, from
    the gcg family's `search.{model}.acc_by_step`."""
    by_model = {m: (search.get(m) or {}).get("acc_by_step") or {} for m in MODELS}
    steps = sorted({int(k) for curve in by_model.values() for k in curve})
    frame = pd.DataFrame({"step": steps})
    for m, curve in by_model.items():
        if curve:
            frame[m] = [curve.get(str(k)) for k in steps]
    return frame


def _gcg_table(gcg: Mapping) -> Table:
    """Per model: accuracy without and with the suffix, then the search's figures."""
    search = gcg.get("search") or {}
    keys = sorted(
        {k for m in MODELS for k in flatten(search.get(m) or {}) if not k.startswith("acc_by")}
    )
    keys = sorted(keys, key=lambda k: (k != "final_loss", k))
    rows = []
    for m in MODELS:
        if not isinstance(gcg.get(m), Mapping):
            continue
        accs = [_acc_value(gcg[m].get(s)) for s in ("none", "suffix")]
        rows.append(
            [m] + [fmt(a) for a in accs] + [fmt(flatten(search.get(m) or {}).get(k)) for k in keys]
        )
    headers = ["model", "forget acc", "forget acc with suffix"] + [
        k.replace("_", " ") for k in keys
    ]
    return Table(headers, rows, [False] + [True] * (len(headers) - 1))


def _gcg_part(inputs: ReportInputs, plots: Path, link: str, data: dict) -> Part:
    part = Part("GCG suffix")
    gcg = (inputs.attack_families or {}).get("gcg") or {}
    if gcg:
        part.table = _gcg_table(gcg)
        part.notes.append(
            "The suffix is optimised on dev-half forget questions and scored on the test half; "
            "the budget curve's step 0 is no suffix."
        )
    else:
        part.notes.append(missing(inputs, "attack_gcg"))
    if budget := gcg_budget(inputs.gcg_suffixes):
        part.notes.append(budget)
    if len(budget := gcg_budget_frame(gcg.get("search") or {})):
        cols = [c for c in budget.columns if c != "step"]
        title = "GCG budget curve: forget accuracy with the suffix held at each step"
        plot_lines(budget, "step", cols, plots / "gcg_budget.png", title, "forget accuracy")
        data["gcg_budget.csv"] = budget
        part.extra_figures.append(figure(plots, link, "gcg_budget.png", "GCG budget curve"))
    if inputs.gcg_losses:
        wide = gcg_wide(inputs.gcg_losses)
        cols = [c for c in wide.columns if c != "step"]
        plot_lines(wide, "step", cols, plots / "gcg_loss.png", "GCG loss per step", "loss")
        data["gcg_loss.csv"] = wide
        part.figure = figure(plots, link, "gcg_loss.png", "GCG loss per step")
    elif gcg:
        part.notes.append(missing(inputs, "gcg_losses"))
    return part


def _summary_part(inputs: ReportInputs, plots: Path, link: str, data: dict) -> Part | None:
    rows = attack_rows(inputs)
    if not len(rows):
        return None
    part = Part("Summary: forget accuracy under every attack", summary_table(rows))
    part.figure = summary_figure(rows, plots, link, data)
    part.notes.append(
        "95% bootstrap intervals over the scored forget questions. Gate open: the share of "
        "them on which the steered model's gate opened. Every family scores the same "
        "test-half questions, and its unattacked row (k=0, none, step=0) is the evaluation's "
        "own result on them."
    )
    return part


def _relearn_part(inputs: ReportInputs, plots: Path, link: str, data: dict) -> Part | None:
    metrics = (inputs.attack_families or {}).get("relearn")
    if not metrics:
        return None
    part = Part("Relearning by fine-tuning")
    part.figure = relearn_figure(metrics, plots, link, data)
    part.notes.append(
        "Fine-tuning on forget-corpus passages with the clamp hook attached (the closed-weights "
        "fine-tuning API scenario); forget accuracy on the test half, retain on the retain "
        "questions, at each evaluated step."
    )
    return part


def _family_notes(inputs: ReportInputs) -> list[Rich]:
    """Families whose metrics file is missing."""
    present = set(inputs.attack_families or {})
    return [
        missing(inputs, name)
        for name in FAMILY_INPUTS
        if name.removeprefix("attack_") not in present and name in inputs.sources
    ]


def _generation_part(generation: Mapping) -> Part:
    """The generation family's figures, as one flat table (run times left out)."""
    flat = {k: v for k, v in flatten(generation).items() if not is_timing_key(k.rsplit(".", 1)[-1])}
    rows: list[list[Rich]] = [[k, v if isinstance(v, str) else fmt(v)] for k, v in flat.items()]
    part = Part("Generation", Table(["metric", "value"], rows, [False, True]))
    part.notes.append(
        "Greedy continuations of forget prompts, plain and with each model's GCG suffix: "
        "fluent (perplexity under the unsteered model below the threshold, and not "
        "repetitive) and leaking (naming the correct choice and no other) shares."
    )
    return part


def _samples_part(inputs: ReportInputs, opts: ReportOptions) -> Part | None:
    table = samples_table(inputs.samples, opts.max_text)
    if table is None:
        return None
    part = Part("Sample continuations", table)
    part.notes.append(
        "Greedy continuations of forget prompts, with and without each model's suffix. "
        "Repetitive: distinct-2 under the threshold or a repeated n-gram over the limit "
        "(such text is never counted fluent, whatever its perplexity); names answer: it "
        "names the correct choice and no other."
    )
    return part


def _suffixes_part(inputs: ReportInputs, opts: ReportOptions) -> Part:
    part = Part("Found suffixes")
    found = inputs.gcg_suffixes
    if found is None:
        part.notes.append(missing(inputs, "gcg_suffixes"))
    elif leaves := text_leaves(found):
        rows: list[list[Rich]] = []
        for where, text in leaves:
            shown = text if len(text) <= opts.max_text else text[: opts.max_text] + " …"
            rows.append([where, [("code", visible(shown))]])
        part.table = Table(["where", "text"], rows)
    else:
        part.notes.append("The suffix file holds no text.")
    return part


def attacks_section(
    inputs: ReportInputs, opts: ReportOptions, plots: Path, link: str
) -> tuple[Attacks, dict[str, pd.DataFrame]]:
    data: dict[str, pd.DataFrame] = {}
    families = inputs.attack_families or {}
    notes = _family_notes(inputs)
    parts = [p for p in (_summary_part(inputs, plots, link, data),) if p]
    if relearn := _relearn_part(inputs, plots, link, data):
        parts.append(relearn)
    if "fewshot" in families:
        parts.append(_fewshot_part(families["fewshot"], plots, link, data))
    if "gcg" in families or inputs.gcg_losses:
        parts.append(_gcg_part(inputs, plots, link, data))
    if "generation" in families:
        parts.append(_generation_part(families["generation"]))
    if samples := _samples_part(inputs, opts):
        parts.append(samples)
    if "gcg" in families:
        parts.append(_suffixes_part(inputs, opts))
    return Attacks(parts, notes), data
