"""Selected latents: their statistics, the frequency scatter, and a card per latent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.contexts import CONTEXT_COLUMNS, LatentCard, latent_cards
from sae_unlearn.reporting.document import Figure, Table, figure, missing
from sae_unlearn.reporting.format import Rich, fmt, fmt_freq
from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions, param
from sae_unlearn.reporting.plots import latents_figure


@dataclass
class SelectedLatents:
    table: Table | None = None
    figure: Figure | None = None
    notes: list[Rich] = field(default_factory=list)
    contexts_note: Rich | None = None  # what the cards show, or why there are none
    cards: list[LatentCard] = field(default_factory=list)


def _columns(sel: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(headers, columns) of the selection table: the columns the selection has."""
    score_name = str(sel["score_name"].iloc[0]) if "score_name" in sel and len(sel) else None
    headers = ["rank", "latent", "forget freq", "retain freq"]
    cols = ["rank", "latent", "forget_freq", "retain_freq"]
    extras = ["forget_max", "retain_max"]
    # Calibrated gate thresholds (select.threshold_rate) and how often each latent
    # exceeds its threshold on 32-token windows of each corpus.
    if "threshold" in sel and (sel["threshold"] > 0).any():
        extras += ["threshold", "forget_window_freq", "retain_window_freq"]
    for extra in extras:
        if extra in sel:
            headers.append(extra.replace("_", " "))
            cols.append(extra)
    if "score" in sel:
        headers.append(f"score ({score_name})" if score_name else "score")
        cols.append("score")
    return headers, cols


def selection_table(selected: pd.DataFrame, latents: pd.DataFrame | None) -> Table:
    sel = selected.sort_values("rank") if "rank" in selected else selected
    if latents is not None and "forget_freq" not in sel:
        sel = sel.merge(latents, on="latent", how="left")
    headers, cols = _columns(sel)
    rows = []
    for r in sel.to_dict("records"):
        row: list[Rich] = []
        for c in cols:
            v = r.get(c)
            if c.endswith("_freq") and v is not None:
                row.append(fmt_freq(v))
            elif c in ("rank", "latent"):
                row.append(fmt(int(v)))
            else:
                row.append(fmt(v))
        rows.append(row)
    return Table(headers, rows, [True] * len(headers))


def latents_section(
    inputs: ReportInputs, opts: ReportOptions, plots: Path, link: str
) -> tuple[SelectedLatents, dict[str, pd.DataFrame]]:
    section = SelectedLatents()
    data: dict[str, pd.DataFrame] = {}
    selected, latents = inputs.selected, inputs.latents
    if selected is None:
        section.notes.append(missing(inputs, "selected"))
    else:
        section.table = selection_table(selected, latents)
    if latents is not None and len(latents):
        chosen = [] if selected is None else [int(x) for x in selected["latent"]]
        threshold = param(inputs.params, "select.retain_threshold")
        data = latents_figure(latents, chosen, threshold, plots / "latents.png")
        section.figure = figure(plots, link, "latents.png", "latent frequencies")
    else:
        section.notes.append(missing(inputs, "latents"))
    if selected is None:
        return section, data
    ctx = inputs.contexts
    if ctx is None:
        section.contexts_note = missing(inputs, "contexts")
    elif not CONTEXT_COLUMNS <= set(ctx.columns):
        lacking = sorted(CONTEXT_COLUMNS - set(ctx.columns))
        section.contexts_note = f"The contexts file lacks columns {lacking}."
    else:
        section.contexts_note = (
            f"The {opts.contexts_per_latent} highest activations of each selected latent per "
            "corpus; the firing token is marked. Open a latent to see its contexts."
        )
        section.cards = latent_cards(selected, ctx, opts.contexts_per_latent)
    return section, data
