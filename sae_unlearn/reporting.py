"""The run report and the comparison of experiments.

A report is a list of blocks (headings, tables, figures, ...) rendered twice: to markdown
(figures linked as files) and to one self-contained HTML file (figures inlined as base64
data URIs, so it opens offline and can be mailed). Both renderings come from the same
blocks, so they always carry the same numbers.

Plots are drawn with matplotlib's Agg canvas on `Figure` objects (no pyplot state, no
display needed), and the data behind every plot is also written as CSV so DVC can draw
the same plots (`dvc plots show`, `dvc plots diff`).

Every input is optional: a missing one leaves its section out with a one-line note.
This module knows nothing of DVC or params.yaml; the `report` and `compare` commands
read the files and pass their contents in.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sae_unlearn.io import atomic_path, write_text

# Four-choice chance accuracy, as sae_unlearn.evaluation.CHANCE (not imported from there: it
# would load torch and transformers into a command that only reads JSON and parquet).
CHANCE = 0.25

# The paper's refusal-clamp result on gemma-2-2b + Gemma Scope layer 7 (Khoriaty et al. 2025):
# WMDP-bio 0.5860 -> 0.2718 at alignment 0.8226. The paper reports no pooled retain accuracy
# for it, so PAPER_RETAIN_STEERED is derived from the alignment: R_forget = (0.2718 - 0.25) /
# (0.5860 - 0.25), R_retain = 0.8226 / (1 - R_forget), and retain = 0.25 + R_retain * (o - 0.25)
# with o the baseline retain accuracy pooled by question count over the four MMLU subjects
# (0.6029 x 204, 0.6010 x 198, 0.5874 x 223, 0.4300 x 100 questions).
PAPER_MODEL = "gemma-2-2b"
PAPER_FORGET_BASELINE = 0.5860
PAPER_FORGET_STEERED = 0.2718
PAPER_ALIGNMENT = 0.8226
PAPER_RETAIN_BASELINE = (0.6029 * 204 + 0.6010 * 198 + 0.5874 * 223 + 0.4300 * 100) / 725
_R_FORGET = (PAPER_FORGET_STEERED - CHANCE) / (PAPER_FORGET_BASELINE - CHANCE)
PAPER_RETAIN_STEERED = CHANCE + PAPER_ALIGNMENT / (1 - _R_FORGET) * (PAPER_RETAIN_BASELINE - CHANCE)

MODELS = ("baseline", "steered")
ROLES = ("forget", "retain")
BASELINE_COLOR, STEERED_COLOR, FRONT_COLOR = "#4c72b0", "#dd8452", "#c44e52"


# --- the document model -------------------------------------------------------------------

# Inline text: a plain string, or spans of (style, text) with style "" | "b" | "i" | "code" |
# "mark" (the firing token of a context).
Span = tuple[str, str]
Rich = str | list[Span]


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    content: Rich


@dataclass
class Note:
    """A one-line remark, e.g. why a section is missing."""

    text: Rich


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Rich]]
    numeric: list[bool] | None = None  # right-align these columns


@dataclass
class Image:
    path: Path  # the PNG on disk (read when rendering HTML)
    link: str  # its path relative to the markdown file
    caption: str


@dataclass
class Code:
    text: str
    language: str = ""


@dataclass
class Bullets:
    items: list[Rich]


Block = Heading | Paragraph | Note | Table | Image | Code | Bullets


# --- formatting ---------------------------------------------------------------------------


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers as the report prints them (the tests parse them back)."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "nan"
        return f"{float(value):.{digits}f}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def fmt_freq(value: float) -> str:
    """Frequencies span many decades: four significant digits, not four decimals."""
    return f"{float(value):.4g}"


def fmt_ci(value: float, ci: Sequence[float] | None) -> str:
    if ci is None or len(ci) != 2:
        return fmt(value)
    return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"a.b.c": leaf}; lists stay leaves."""
    if not isinstance(data, Mapping):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _visible(text: str) -> str:
    """Line breaks and tabs shown as symbols: contexts live on one table line."""
    return text.replace("\r\n", "\n").replace("\n", "⏎").replace("\t", "⇥")


def context_spans(left: str, token: str, right: str) -> list[Span]:
    """A context with its firing token marked; the token's surrounding whitespace stays
    outside the mark so markdown emphasis still parses (`** x**` is not bold)."""
    stripped = token.strip()
    if not stripped:
        # A whitespace or newline token: show it as a symbol so the mark is visible.
        shown = _visible(token).replace(" ", "␣") or "∅"
        return [("", _visible(left)), ("mark", shown), ("", _visible(right))]
    lead = token[: len(token) - len(token.lstrip())]
    trail = token[len(token.rstrip()) :]
    return [
        ("", _visible(left + lead)),
        ("mark", _visible(stripped)),
        ("", _visible(trail + right)),
    ]


# --- markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<|~])")
# Characters that start a block (heading, quote, list) only at the beginning of a line.
_MD_BLOCK_START = re.compile(r"^([#>+-])")


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_block(text: str) -> str:
    return _MD_BLOCK_START.sub(r"\\\1", text)


def _md_code(text: str, in_table: bool) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    code = f"{fence}{pad}{text}{pad}{fence}"
    # GFM splits table cells at pipes even inside code spans.
    return code.replace("|", "\\|") if in_table else code


def md_rich(content: Rich, in_table: bool = False) -> str:
    if isinstance(content, str):
        return md_escape(_visible(content) if in_table else content)
    parts = []
    for style, text in content:
        if not text:
            continue
        if style == "code":
            parts.append(_md_code(text, in_table))
        elif style == "mark":
            # Brackets outside the bold: `**` next to punctuation always opens and closes,
            # whatever characters the context has around the token.
            parts.append(f"\\[**{md_escape(text)}**\\]")
        elif style == "b":
            parts.append(f"**{md_escape(text)}**")
        elif style == "i":
            parts.append(f"_{md_escape(text)}_")
        else:
            parts.append(md_escape(text))
    return "".join(parts)


def render_markdown(blocks: Iterable[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(_md_block(md_rich(block.content)))
        elif isinstance(block, Note):
            out.append(f"_{md_rich(block.text)}_")
        elif isinstance(block, Table):
            numeric = block.numeric or [False] * len(block.headers)
            out.append("| " + " | ".join(md_escape(h) for h in block.headers) + " |")
            out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            for row in block.rows:
                out.append("| " + " | ".join(md_rich(c, in_table=True) for c in row) + " |")
        elif isinstance(block, Image):
            out.append(f"![{md_escape(block.caption)}]({block.link})")
        elif isinstance(block, Code):
            longest = max((len(m) for m in re.findall(r"`{3,}", block.text)), default=2)
            fence = "`" * (longest + 1)
            out.append(f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}")
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {md_rich(item)}" for item in block.items))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
mark { background: #ffe066; font-weight: bold; padding: 0 0.1em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f7f7f7; padding: 0.7em; overflow-x: auto; font-size: 0.85em; }
p.note { color: #777; font-style: italic; }
"""


def html_rich(content: Rich) -> str:
    if isinstance(content, str):
        return html.escape(content)
    tags = {"b": "strong", "i": "em", "code": "code", "mark": "mark"}
    parts = []
    for style, text in content:
        tag = tags.get(style)
        escaped = html.escape(text)
        parts.append(f"<{tag}>{escaped}</{tag}>" if tag else escaped)
    return "".join(parts)


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_html(blocks: Iterable[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            out.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{html_rich(block.content)}</p>")
        elif isinstance(block, Note):
            out.append(f'<p class="note">{html_rich(block.text)}</p>')
        elif isinstance(block, Table):
            numeric = block.numeric or [False] * len(block.headers)
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            body = []
            for row in block.rows:
                cells = "".join(
                    f'<td class="num">{html_rich(c)}</td>' if n else f"<td>{html_rich(c)}</td>"
                    for c, n in zip(row, numeric, strict=True)
                )
                body.append(f"<tr>{cells}</tr>")
            out.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            )
        elif isinstance(block, Image):
            out.append(
                f'<figure><img src="{png_data_uri(block.path)}" alt="{html.escape(block.caption)}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{html_rich(item)}</li>" for item in block.items)
            out.append(f"<ul>{items}</ul>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# --- plots --------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    # No "Software" metadata: the same data gives byte-identical PNGs across matplotlib
    # versions, so DVC sees no change when nothing changed.
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


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


def plot_accuracy(rows: pd.DataFrame, metric: str, path: Path) -> None:
    labels = list(dict.fromkeys(rows["label"]))
    models = [m for m in MODELS if m in set(rows["model"])]
    fig = _figure(7.5, 1.2 + 0.45 * len(labels) * max(1, len(models)) / 1.5)
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
    ax.set_title("Accuracy per subject: baseline vs steered")
    # Below the axes: inside, it would hide bars and intervals.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize="small")
    save_png(fig, path)


def plot_latents(
    stats: pd.DataFrame,
    selected: Sequence[int],
    path: Path,
    retain_threshold: float | None = None,
) -> float:
    """Forget vs retain firing frequency, log axes; returns the floor zeros are drawn at."""
    forget = stats["forget_freq"].to_numpy(float)
    retain = stats["retain_freq"].to_numpy(float)
    positive = np.concatenate([forget[forget > 0], retain[retain > 0]])
    # Log axes cannot show 0; latents that never fire on a corpus sit on a floor line
    # half a decade below the smallest observed frequency.
    floor = float(10 ** (math.floor(math.log10(positive.min())) - 0.5)) if len(positive) else 1e-6
    x, y = np.maximum(retain, floor), np.maximum(forget, floor)
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot()
    ax.scatter(x, y, s=6, alpha=0.35, color="#888888", linewidths=0, label="latents")
    mask = stats["latent"].isin(list(selected)).to_numpy()
    ax.scatter(
        x[mask], y[mask], s=40, color=FRONT_COLOR, edgecolors="black", label="selected", zorder=3
    )
    for lat, xi, yi in zip(stats["latent"].to_numpy()[mask], x[mask], y[mask], strict=True):
        ax.annotate(str(int(lat)), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if retain_threshold:
        ax.axvline(retain_threshold, color="grey", linestyle="--", linewidth=1)
        ax.text(retain_threshold, floor, " retain threshold", fontsize=7, color="grey")
    ax.plot([floor, 1], [floor, 1], color="#bbbbbb", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"retain firing frequency (0 drawn at {floor:.1g})")
    ax.set_ylabel(f"forget firing frequency (0 drawn at {floor:.1g})")
    ax.set_title("SAE latents: forget vs retain frequency")
    ax.legend(loc="lower right", fontsize="small")
    save_png(fig, path)
    return floor


def plot_lines(
    frame: pd.DataFrame, x: str, columns: Sequence[str], path: Path, title: str, ylabel: str
) -> None:
    fig = _figure(6.5, 4.2)
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


# --- the report ---------------------------------------------------------------------------


@dataclass
class ReportInputs:
    """Everything the report can show; None where the input does not exist (yet)."""

    params: Mapping | None = None
    cache: Mapping | None = None
    sae: Mapping | None = None
    baseline: Mapping | None = None
    steered: Mapping | None = None
    attack: Mapping | None = None
    gcg_loss: pd.DataFrame | None = None
    suffixes: Any = None
    latents: pd.DataFrame | None = None
    contexts: pd.DataFrame | None = None
    selected: pd.DataFrame | None = None
    clamp: Mapping | None = None
    # stage -> {"key.path": seconds} read from the JSON files each stage writes
    timings: Mapping[str, Mapping[str, float]] | None = None
    # where each input came from, for the missing-input notes
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportOptions:
    title: str = "sae-unlearn report"
    contexts_per_latent: int = 3  # per selected latent and corpus
    max_text: int = 400  # longest suffix or continuation text shown


def _param(params: Mapping | None, key: str, default: Any = None) -> Any:
    node: Any = params or {}
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _missing(inputs: ReportInputs, *names: str) -> Note:
    spans: list[Span] = [("", "Not available yet (")]
    for i, name in enumerate(names):
        spans += [("", ", ")] if i else []
        spans.append(("code", inputs.sources[name]) if name in inputs.sources else ("", name))
    return Note(spans + [("", " missing); this section is left out.")])


def primary_metric(inputs: ReportInputs) -> str:
    if inputs.steered and inputs.steered.get("primary_metric"):
        return str(inputs.steered["primary_metric"])
    return str(_param(inputs.params, "evaluate.primary_metric", "acc"))


def model_name(inputs: ReportInputs) -> str:
    return str(_param(inputs.params, "model.name", "") or "")


def section_setup(inputs: ReportInputs) -> list[Block]:
    p = inputs.params or {}
    sae = inputs.sae or {}
    rows: list[list[Rich]] = [
        ["model", [("code", str(_param(p, "model.name", "?")))]],
        ["dtype", str(_param(p, "model.dtype", "?"))],
        ["hook layer", fmt(sae.get("layer", _param(p, "sae.layer")))],
    ]
    source = sae.get("source", _param(p, "sae.source"))
    if source == "pretrained":
        release = sae.get("release") or _param(p, "sae.release")
        sae_id = sae.get("sae_id") or _param(p, "sae.sae_id")
        rows.append(["SAE", [("code", f"{release} / {sae_id}")]])
    elif source == "path":
        rows.append(["SAE", [("code", str(sae.get("path") or _param(p, "sae.path")))]])
    else:
        rows.append(["SAE", f"trained here ({sae.get('architecture', '?')})"])
    if sae:
        rows.append(["SAE width (d_sae)", fmt(sae.get("d_sae"))])
    if inputs.cache:
        for corpus in ROLES:
            c = inputs.cache.get(corpus)
            if isinstance(c, Mapping):
                rows.append(
                    [
                        f"{corpus} corpus (cached)",
                        f"{fmt(c.get('n_tokens'))} tokens in {fmt(c.get('n_sequences'))} sequences",
                    ]
                )
    for role in ROLES:
        m = (inputs.baseline or inputs.steered or {}).get(role)
        if isinstance(m, Mapping):
            subjects = len(m.get("by_subject") or {})
            rows.append([f"{role} questions", f"{fmt(m.get('n'))} in {subjects} subjects"])
    fmt_name = (inputs.steered or inputs.baseline or {}).get("format")
    if fmt_name:
        rows.append(["question format", str(fmt_name)])
    if inputs.clamp:
        c = inputs.clamp
        rows.append(["clamp mode", str(c.get("mode", "?"))])
        rows.append(["clamped latents", fmt(list(c.get("latents", [])))])
        for key, value in c.items():
            if key not in ("mode", "latents", "layer") and not isinstance(value, Mapping | list):
                rows.append([f"clamp {key}", str(value)])
    blocks: list[Block] = [Heading(2, "Setup"), Table(["", "value"], rows)]
    if not inputs.cache:
        blocks.append(_missing(inputs, "cache"))
    if inputs.params:
        blocks += [
            Paragraph("Parameters (params.yaml):"),
            Code(yaml.safe_dump(dict(inputs.params), sort_keys=False), "yaml"),
        ]
    return blocks


SAE_KEYS = ("explained_variance", "l0", "dead_fraction", "n_tokens", "eval_split")


def section_sae(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading(2, "SAE quality")]
    if not inputs.sae:
        return blocks + [_missing(inputs, "sae")]
    sae = inputs.sae
    rows = [[key, fmt(sae[key])] for key in SAE_KEYS if key in sae]
    rows += [
        [key, fmt(value)]
        for key, value in sae.items()
        if key not in SAE_KEYS and not isinstance(value, Mapping | list) and value is not None
    ]
    blocks.append(Table(["metric", "value"], rows, [False, True]))
    blocks.append(
        Note(
            "explained variance and L0 (active latents per token) on "
            f"{fmt(sae.get('n_tokens'))} {sae.get('eval_split', '')} tokens; dead: latents that "
            "never fired on them."
        )
    )
    return blocks


def section_latents(
    inputs: ReportInputs, opts: ReportOptions, plots: Path, link: str
) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    blocks: list[Block] = [Heading(2, "Selected latents")]
    data: dict[str, pd.DataFrame] = {}
    selected = inputs.selected
    latents = inputs.latents
    if selected is None:
        blocks.append(_missing(inputs, "selected"))
    else:
        sel = selected.sort_values("rank") if "rank" in selected else selected
        if latents is not None and "forget_freq" not in sel:
            sel = sel.merge(latents, on="latent", how="left")
        score_name = str(sel["score_name"].iloc[0]) if "score_name" in sel and len(sel) else None
        headers = ["rank", "latent", "forget freq", "retain freq"]
        cols = ["rank", "latent", "forget_freq", "retain_freq"]
        for extra in ("forget_max", "retain_max"):
            if extra in sel:
                headers.append(extra.replace("_", " "))
                cols.append(extra)
        # Calibrated gate thresholds (select.threshold_rate) and how often each latent
        # exceeds its threshold on 32-token windows of each corpus.
        if "threshold" in sel and (sel["threshold"] > 0).any():
            for extra in ("threshold", "forget_window_freq", "retain_window_freq"):
                if extra in sel:
                    headers.append(extra.replace("_", " "))
                    cols.append(extra)
        if "score" in sel:
            headers.append(f"score ({score_name})" if score_name else "score")
            cols.append("score")
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
        blocks.append(Table(headers, rows, [True] * len(headers)))
    if latents is not None and len(latents):
        chosen = [] if selected is None else [int(x) for x in selected["latent"]]
        threshold = _param(inputs.params, "select.retain_threshold")
        floor = plot_latents(latents, chosen, plots / "latents.png", threshold)
        freqs = latents[["latent", "forget_freq", "retain_freq"]].copy()
        # Only latents that fire somewhere: a 16k-latent SAE has many dead ones.
        freqs = freqs[(freqs["forget_freq"] > 0) | (freqs["retain_freq"] > 0)]
        # log10 columns (zeros at the plot's floor) so DVC's linear-axis templates show
        # the same picture as the log-axis PNG.
        for c in ("forget_freq", "retain_freq"):
            freqs[f"log10_{c}"] = np.log10(np.maximum(freqs[c].to_numpy(float), floor))
        freqs["selected"] = freqs["latent"].isin(chosen)
        data["latent_freqs.csv"] = freqs
        data["selected_latents.csv"] = freqs[freqs["selected"]]
        blocks.append(Image(plots / "latents.png", f"{link}/latents.png", "latent frequencies"))
    else:
        blocks.append(_missing(inputs, "latents"))
    if selected is not None:
        blocks += contexts_blocks(inputs, selected, opts)
    return blocks, data


def contexts_blocks(
    inputs: ReportInputs, selected: pd.DataFrame, opts: ReportOptions
) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Top activating contexts")]
    ctx = inputs.contexts
    if ctx is None:
        return blocks + [_missing(inputs, "contexts")]
    needed = {"latent", "left", "token", "right"}
    if not needed <= set(ctx.columns):
        return blocks + [
            Note(f"The contexts file lacks columns {sorted(needed - set(ctx.columns))}.")
        ]
    blocks.append(
        Note(
            f"The {opts.contexts_per_latent} highest activations of each selected latent per "
            "corpus; the firing token is marked."
        )
    )
    order = selected.sort_values("rank") if "rank" in selected else selected
    for r in order.to_dict("records"):
        latent = int(r["latent"])
        rank = f"rank {int(r['rank'])}, " if "rank" in r else ""
        blocks.append(Paragraph([("b", f"Latent {latent}"), ("", f" ({rank}")] + _freq_spans(r)))
        mine = ctx[ctx["latent"] == latent]
        if "activation" in mine:
            mine = mine.sort_values("activation", ascending=False)
        if "corpus" in mine:
            # Forget contexts first: they show what the latent means.
            mine = mine.assign(_o=mine["corpus"].map({"forget": 0, "retain": 1}).fillna(2))
            mine = mine.sort_values(
                ["_o", "activation"] if "activation" in mine else ["_o"],
                ascending=[True, False] if "activation" in mine else [True],
                kind="mergesort",
            )
            mine = mine.groupby("corpus", sort=False).head(opts.contexts_per_latent)
        else:
            mine = mine.head(opts.contexts_per_latent)
        if mine.empty:
            blocks.append(Note(f"No contexts recorded for latent {latent}."))
            continue
        rows = []
        for c in mine.to_dict("records"):
            rows.append(
                [
                    str(c.get("corpus", "")),
                    fmt(c.get("activation"), 2) if "activation" in c else "",
                    context_spans(str(c["left"]), str(c["token"]), str(c["right"])),
                ]
            )
        blocks.append(Table(["corpus", "activation", "context"], rows, [False, True, False]))
    return blocks


def _freq_spans(r: Mapping) -> list[Span]:
    parts = []
    if r.get("forget_freq") is not None and not pd.isna(r.get("forget_freq")):
        parts.append(f"forget freq {fmt_freq(r['forget_freq'])}")
    if r.get("retain_freq") is not None and not pd.isna(r.get("retain_freq")):
        parts.append(f"retain freq {fmt_freq(r['retain_freq'])}")
    return [("", ", ".join(parts) + ")")]


def section_accuracy(
    inputs: ReportInputs, plots: Path, link: str
) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    blocks: list[Block] = [Heading(2, "Accuracy: baseline vs steered")]
    data: dict[str, pd.DataFrame] = {}
    if not inputs.baseline and not inputs.steered:
        return blocks + [_missing(inputs, "baseline", "steered")], data
    if not inputs.baseline:
        blocks.append(_missing(inputs, "baseline"))
    if not inputs.steered:
        blocks.append(_missing(inputs, "steered"))
    metric = primary_metric(inputs)
    both = {m: inputs.baseline if m == "baseline" else inputs.steered for m in MODELS}
    present = [m for m in MODELS if both[m]]
    headers = ["set", "subject", "n"]
    for name in ("acc", "acc_norm"):
        headers += [f"{m} {name} [95% CI]" for m in present]
    rows = []
    for role in ROLES:
        first = both[present[0]].get(role)
        if not isinstance(first, Mapping):
            continue
        subjects = ["all"] + sorted((first.get("by_subject") or {}).keys())
        for subject in subjects:
            row: list[Rich] = [role, subject]
            cells, n = [], None
            for name in ("acc", "acc_norm"):
                for m in present:
                    group = both[m].get(role, {})
                    if subject != "all":
                        group = (group.get("by_subject") or {}).get(subject, {})
                    n = group.get("n", n)
                    cells.append(
                        fmt_ci(group[name], group.get(f"{name}_ci")) if name in group else "–"
                    )
            rows.append(row + [fmt(n)] + cells)
    blocks.append(Table(headers, rows, [False, False] + [True] * (len(headers) - 2)))
    blocks.append(
        Note(
            f"acc: the choice with the highest log-likelihood; acc_norm: log-likelihood per "
            f"character. The alignment score uses {metric}. Chance is {CHANCE}."
        )
    )
    acc = accuracy_rows(inputs.baseline, inputs.steered, metric)
    if len(acc):
        plot_accuracy(acc, metric, plots / "accuracy.png")
        # Fixed column names whichever metric is primary, so dvc.yaml's plots need no edit.
        names = {metric: "accuracy", f"{metric}_lo": "ci_low", f"{metric}_hi": "ci_high"}
        table = acc.rename(columns=names).assign(metric=metric)
        cols = ["label", "role", "subject", "metric", "accuracy", "ci_low", "ci_high", "n"]
        for m in present:
            data[f"accuracy_{m}.csv"] = table[table["model"] == m][cols]
        blocks.append(Image(plots / "accuracy.png", f"{link}/accuracy.png", "accuracy per subject"))
    return blocks, data


ALIGNMENT_KEYS = (
    "alignment",
    "r_forget",
    "r_retain",
    "forget_ratio",
    "retain_ratio",
    "retain_kept_99",
    "primary_metric",
)


def section_alignment(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Alignment")]
    s = inputs.steered or {}
    if "alignment" not in s:
        return (
            blocks + [_missing(inputs, "steered")]
            if not s
            else blocks
            + [
                Note(
                    "The steered metrics carry no alignment score (no baseline metrics to compare)."
                )
            ]
        )
    rows = [[key, fmt(s[key])] for key in ALIGNMENT_KEYS if key in s]
    blocks.append(Table(["metric", "value"], rows, [False, True]))
    blocks.append(
        Note(
            "alignment = R_retain x (1 - R_forget) with R(m, o) = min(1, max(eps, m - 0.25) / "
            "max(eps, o - 0.25)) (Khoriaty et al. 2025); retain_kept_99: the steered retain "
            "accuracy is at least 99% of the baseline's (SAEBench's condition)."
        )
    )
    if PAPER_MODEL in model_name(inputs):
        blocks.append(
            Paragraph(
                "Paper reference (gemma-2-2b, refusal-clamp): WMDP-bio "
                f"{PAPER_FORGET_BASELINE:.4f} -> {PAPER_FORGET_STEERED:.4f}, "
                f"alignment {PAPER_ALIGNMENT:.4f}."
            )
        )
    return blocks


def _acc_value(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("acc")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fewshot_frame(attack: Mapping) -> pd.DataFrame:
    """k, baseline, steered (accuracy) from `fewshot.{model}.{k}`."""
    fewshot = attack.get("fewshot") or {}
    ks = sorted({int(k) for m in MODELS for k in (fewshot.get(m) or {})})
    frame = pd.DataFrame({"k": ks})
    for m in MODELS:
        if m in fewshot:
            frame[m] = [_acc_value((fewshot[m] or {}).get(str(k), fewshot[m].get(k))) for k in ks]
    return frame


def gcg_wide(loss: pd.DataFrame) -> pd.DataFrame:
    """step, baseline, steered from the long (step, model, loss) table."""
    wide = loss.pivot_table(index="step", columns="model", values="loss", aggfunc="mean")
    wide = wide.reset_index()
    wide.columns.name = None
    return wide[
        ["step"]
        + [m for m in MODELS if m in wide]
        + [c for c in wide.columns if c not in ("step", *MODELS)]
    ]


def _text_leaves(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string in a JSON structure with its key path (lists indexed)."""
    if isinstance(data, str):
        return [(prefix or "value", data)]
    if isinstance(data, Mapping):
        out = []
        for k, v in data.items():
            out += _text_leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(data, list):
        out = []
        for i, v in enumerate(data):
            out += _text_leaves(v, f"{prefix}[{i}]")
        return out
    return []


def _is_timing(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")


def section_attack(
    inputs: ReportInputs, opts: ReportOptions, plots: Path, link: str
) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    blocks: list[Block] = [Heading(2, "Attacks")]
    data: dict[str, pd.DataFrame] = {}
    attack = inputs.attack
    if not attack:
        return blocks + [_missing(inputs, "attack")], data

    blocks.append(Heading(3, "Few-shot"))
    fs = fewshot_frame(attack)
    if len(fs):
        present = [m for m in MODELS if m in fs]
        rows = [[fmt(int(r["k"]))] + [fmt(r[m]) for m in present] for r in fs.to_dict("records")]
        headers = ["k"] + [f"{m} forget acc" for m in present]
        blocks.append(Table(headers, rows, [True] * len(headers)))
        title = "Forget accuracy vs few-shot examples"
        plot_lines(fs, "k", present, plots / "fewshot.png", title, "forget accuracy")
        data["fewshot.csv"] = fs
        blocks.append(Image(plots / "fewshot.png", f"{link}/fewshot.png", "few-shot accuracy"))
    else:
        blocks.append(Note("The attack metrics carry no few-shot results."))

    blocks.append(Heading(3, "GCG suffix"))
    gcg = attack.get("gcg") or {}
    if gcg:
        keys = sorted({k for m in MODELS for k in flatten(gcg.get(m) or {})})
        keys = sorted(keys, key=lambda k: (k not in ("acc", "final_loss"), k))
        names = {"acc": "forget acc with suffix", "final_loss": "final loss"}
        rows = [[m] + [fmt(flatten(gcg[m]).get(k)) for k in keys] for m in MODELS if m in gcg]
        headers = ["model"] + [names.get(k, k) for k in keys]
        blocks.append(Table(headers, rows, [False] + [True] * len(keys)))
    else:
        blocks.append(Note("The attack metrics carry no GCG results."))
    if inputs.gcg_loss is not None and len(inputs.gcg_loss):
        wide = gcg_wide(inputs.gcg_loss)
        cols = [c for c in wide.columns if c != "step"]
        plot_lines(wide, "step", cols, plots / "gcg_loss.png", "GCG loss per step", "loss")
        data["gcg_loss.csv"] = wide
        blocks.append(Image(plots / "gcg_loss.png", f"{link}/gcg_loss.png", "GCG loss per step"))
    else:
        blocks.append(_missing(inputs, "gcg_loss"))

    # Anything else the attack stage reports (gibberish checks, ...), as flat tables;
    # run times go to the timing section instead.
    for key, value in attack.items():
        if key in ("fewshot", "gcg") or _is_timing(str(key)):
            continue
        flat = flatten(value) if isinstance(value, Mapping) else {key: value}
        flat = {k: v for k, v in flat.items() if not _is_timing(k.rsplit(".", 1)[-1])}
        if flat:
            blocks.append(Heading(3, str(key).replace("_", " ").capitalize()))
            rows = [[k, v if isinstance(v, str) else fmt(v)] for k, v in flat.items()]
            blocks.append(Table(["metric", "value"], rows, [False, True]))

    blocks.append(Heading(3, "Found suffixes and sample continuations"))
    if inputs.suffixes is None:
        blocks.append(_missing(inputs, "suffixes"))
    elif leaves := _text_leaves(inputs.suffixes):
        rows = []
        for where, text in leaves:
            shown = text if len(text) <= opts.max_text else text[: opts.max_text] + " …"
            rows.append([where, [("code", _visible(shown))]])
        blocks.append(Table(["where", "text"], rows))
    else:
        blocks.append(Note("The suffix file holds no text."))
    return blocks, data


def section_timings(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Run time per stage")]
    timings = inputs.timings or {}
    rows, without = [], []
    for stage, values in timings.items():
        if values:
            total = sum(values.values())
            detail = "; ".join(f"{k} {v:.1f}" for k, v in values.items())
            rows.append([stage, f"{total:.1f}", detail])
        else:
            without.append(stage)
    if rows:
        blocks.append(Table(["stage", "seconds", "recorded as"], rows, [False, True, False]))
    if without:
        blocks.append(
            Note(f"No run time recorded by: {', '.join(without)} (DVC itself records none).")
        )
    if not timings:
        blocks.append(Note("No stage run times are known."))
    return blocks


def build_report(
    inputs: ReportInputs, plots: Path, link: str = "plots", opts: ReportOptions | None = None
) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    """The report's blocks; PNGs go to `plots`, and the plot data comes back as frames
    keyed by file name (the caller writes them next to the PNGs)."""
    opts = opts or ReportOptions()
    plots.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = [Heading(1, opts.title)]
    summary = []
    if inputs.steered and "forget" in inputs.steered:
        metric = primary_metric(inputs)
        s, b = inputs.steered, inputs.baseline or {}
        for role in ROLES:
            if role in s:
                before = f"{fmt(b[role][metric])} -> " if role in b else ""
                summary.append(f"{role} {metric} {before}{fmt(s[role][metric])}")
        if "alignment" in s:
            summary.append(f"alignment {fmt(s['alignment'])}")
    if summary:
        blocks.append(Paragraph([("b", "Summary:"), ("", " " + "; ".join(summary) + ".")]))
    data: dict[str, pd.DataFrame] = {}
    blocks += section_setup(inputs)
    blocks += section_sae(inputs)
    part, more = section_latents(inputs, opts, plots, link)
    blocks += part
    data.update(more)
    part, more = section_accuracy(inputs, plots, link)
    blocks += part
    data.update(more)
    blocks += section_alignment(inputs)
    part, more = section_attack(inputs, opts, plots, link)
    blocks += part
    data.update(more)
    blocks += section_timings(inputs)
    return blocks, data


def write_report(
    inputs: ReportInputs, out_dir: str | Path, opts: ReportOptions | None = None
) -> dict[str, Path]:
    """`out_dir/report.md`, `out_dir/report.html` and `out_dir/plots/` (PNGs + plot data).

    The plots directory is built aside and renamed into place whole, so a failed run
    never leaves a mix of old and new plots.
    """
    opts = opts or ReportOptions()
    out = Path(out_dir)
    with atomic_path(out / "plots") as tmp:
        tmp.mkdir(parents=True)
        blocks, data = build_report(inputs, tmp, "plots", opts)
        for name, frame in data.items():
            frame.to_csv(tmp / name, index=False, float_format="%.6g")
        html_text = render_html(blocks, opts.title)  # reads the PNGs before the rename
    for block in blocks:
        if isinstance(block, Image):
            block.path = out / "plots" / block.path.name
    write_text(out / "report.md", render_markdown(blocks))
    write_text(out / "report.html", html_text)
    return {"markdown": out / "report.md", "html": out / "report.html", "plots": out / "plots"}


# --- timings ------------------------------------------------------------------------------


def find_seconds(data: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric `seconds` / `*_seconds` leaf of a JSON structure, by key path."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            is_time = str(key) == "seconds" or str(key).endswith("_seconds")
            if is_time and isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = float(value)
            else:
                out.update(find_seconds(value, name))
    return out


# --- comparison of experiments ------------------------------------------------------------


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


def comparison_table(experiments: Sequence[Experiment]) -> pd.DataFrame:
    """experiment, rev, the params that differ, forget/retain accuracy, alignment, front."""
    keys = sorted({k for e in experiments for k in e.params})
    differ = [k for k in keys if len({_param_text(e.params.get(k, None)) for e in experiments}) > 1]
    rows = []
    for e in experiments:
        s = e.steered
        metric = str(s.get("primary_metric", "acc"))
        row: dict[str, Any] = {"experiment": e.name, "rev": e.rev[:7]}
        for k in differ:
            value = e.params.get(k)
            row[k] = _param_text(value) if isinstance(value, list | dict) else value
        row["metric"] = metric
        row["forget_acc"] = float(s["forget"][metric])
        row["retain_acc"] = float(s["retain"][metric])
        row["alignment"] = float(s["alignment"]) if "alignment" in s else float("nan")
        row["retain_kept_99"] = s.get("retain_kept_99")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["pareto"] = pareto_front(frame["forget_acc"], frame["retain_acc"])
    return frame


def comparison_markdown(
    table: pd.DataFrame, plot_link: str | None, reference: bool, skipped: Sequence[str] = ()
) -> str:
    blocks: list[Block] = [Heading(1, "Experiments")]
    if table.empty:
        blocks.append(Note("No experiment with steered metrics was found."))
    else:
        headers = list(table.columns)
        numeric = [
            pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
            for c in headers
        ]
        metrics = {"forget_acc", "retain_acc", "alignment", "retain_kept_99", "pareto"}
        # Metrics to four decimals; params as written in params.yaml.
        rows = [
            [fmt(v) if c in metrics else str(v) for c, v in zip(headers, r, strict=True)]
            for r in table.itertuples(index=False, name=None)
        ]
        blocks.append(Table(headers, rows, numeric))
        blocks.append(
            Note(
                "pareto: no other experiment has both lower (or equal) forget accuracy and higher "
                "(or equal) retain accuracy. Columns between rev and metric are the params that "
                "differ."
            )
        )
        kept = table[table["retain_kept_99"] == True]  # noqa: E712 (None/NaN rows must drop)
        if len(kept):
            best = kept.sort_values("forget_acc", kind="mergesort").iloc[0]
            blocks.append(
                Paragraph(
                    "SAEBench view: the lowest forget accuracy among experiments that keep retain "
                    f"accuracy >= 99% of baseline is {fmt(best['forget_acc'])} "
                    f"({best['experiment']})."
                )
            )
    if reference:
        blocks.append(
            Paragraph(
                "Paper reference (gemma-2-2b, refusal-clamp): forget "
                f"{PAPER_FORGET_BASELINE:.4f} -> {PAPER_FORGET_STEERED:.4f}, "
                f"alignment {PAPER_ALIGNMENT:.4f} (retain {PAPER_RETAIN_STEERED:.4f} "
                "derived from the alignment, not reported)."
            )
        )
    if plot_link:
        blocks.append(Image(Path(plot_link), plot_link, "forget vs retain accuracy"))
    if skipped:
        blocks.append(Heading(2, "Skipped"))
        blocks.append(Bullets(list(skipped)))
    return render_markdown(blocks)


def pareto_plot(table: pd.DataFrame, path: Path, reference: bool = False) -> None:
    """Forget vs retain accuracy of each experiment; the Pareto front joined and ringed."""
    fig = _figure(6.5, 5.2)
    ax = fig.add_subplot()
    if len(table):
        on = table["pareto"].to_numpy(bool)
        ax.scatter(
            table["forget_acc"][~on],
            table["retain_acc"][~on],
            color="#888888",
            label="dominated",
            zorder=2,
        )
        front = table[on].sort_values("forget_acc")
        ax.step(
            front["forget_acc"],
            front["retain_acc"],
            where="post",
            color=FRONT_COLOR,
            linewidth=1,
            zorder=1,
        )
        ax.scatter(
            front["forget_acc"],
            front["retain_acc"],
            color=FRONT_COLOR,
            edgecolors="black",
            s=60,
            label="Pareto front",
            zorder=3,
        )
        for r in table.to_dict("records"):
            ax.annotate(
                str(r["experiment"]),
                (r["forget_acc"], r["retain_acc"]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
            )
    if reference:
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
    ax.set_ylabel("retain accuracy (higher is better)")
    ax.set_title("Experiments: forget vs retain accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    save_png(fig, path)


def write_comparison(
    experiments: Sequence[Experiment],
    out_dir: str | Path,
    reference: bool = False,
    skipped: Sequence[str] = (),
) -> pd.DataFrame:
    """`compare.md`, `compare.csv` and `pareto.png` in `out_dir`; returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(experiments)
    with atomic_path(out / "pareto.png") as tmp:
        pareto_plot(table, tmp, reference)
    write_text(out / "compare.csv", table.to_csv(index=False))
    write_text(out / "compare.md", comparison_markdown(table, "pareto.png", reference, skipped))
    return table
