"""Setup (model, SAE, corpora, questions, clamp, params.yaml) and SAE quality."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from sae_unlearn.reporting.constants import ROLES
from sae_unlearn.reporting.document import Table, missing
from sae_unlearn.reporting.format import Rich, fmt
from sae_unlearn.reporting.inputs import ReportInputs, param


@dataclass
class Setup:
    table: Table
    notes: list[Rich] = field(default_factory=list)
    params_yaml: str | None = None  # folded away in <details>


def _sae_row(inputs: ReportInputs) -> list[Rich]:
    p, sae = inputs.params or {}, inputs.sae or {}
    source = sae.get("source", param(p, "sae.source"))
    if source == "pretrained":
        release = sae.get("release") or param(p, "sae.release")
        sae_id = sae.get("sae_id") or param(p, "sae.sae_id")
        return ["SAE", [("code", f"{release} / {sae_id}")]]
    if source == "path":
        return ["SAE", [("code", str(sae.get("path") or param(p, "sae.path")))]]
    return ["SAE", f"trained here ({sae.get('architecture', '?')})"]


def setup_section(inputs: ReportInputs) -> Setup:
    p = inputs.params or {}
    sae = inputs.sae or {}
    rows: list[list[Rich]] = [
        ["model", [("code", str(param(p, "model.name", "?")))]],
        ["dtype", str(param(p, "model.dtype", "?"))],
        ["hook layer", fmt(sae.get("layer", param(p, "sae.layer")))],
        _sae_row(inputs),
    ]
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
    section = Setup(Table(["", "value"], rows))
    if not inputs.cache:
        section.notes.append(missing(inputs, "cache"))
    if inputs.params:
        section.params_yaml = yaml.safe_dump(dict(inputs.params), sort_keys=False)
    return section


SAE_KEYS = ("explained_variance", "l0", "dead_fraction", "n_tokens", "eval_split")


@dataclass
class SaeQuality:
    table: Table | None = None
    notes: list[Rich] = field(default_factory=list)


def sae_section(inputs: ReportInputs) -> SaeQuality:
    if not inputs.sae:
        return SaeQuality(notes=[missing(inputs, "sae")])
    sae = inputs.sae
    rows: list[list[Rich]] = [[key, fmt(sae[key])] for key in SAE_KEYS if key in sae]
    rows += [
        [key, fmt(value)]
        for key, value in sae.items()
        if key not in SAE_KEYS and not isinstance(value, Mapping | list) and value is not None
    ]
    note = (
        "explained variance and L0 (active latents per token) on "
        f"{fmt(sae.get('n_tokens'))} {sae.get('eval_split', '')} tokens; dead: latents that "
        "never fired on them."
    )
    return SaeQuality(Table(["metric", "value"], rows, [False, True]), [note])
