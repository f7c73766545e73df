"""What the report reads: every stage output it can show, each optional, and the run times
the stages recorded themselves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sae_unlearn.choices import ATTACK_FAMILIES
from sae_unlearn.errors import UserError
from sae_unlearn.io import read_json
from sae_unlearn.reporting.constants import ROLES


class ReportInputError(UserError):
    """An input exists but cannot be read; its message says which stage to rerun."""


@dataclass
class ReportInputs:
    """Everything the report can show; None where the input does not exist (yet)."""

    params: Mapping | None = None
    cache: Mapping | None = None
    sae: Mapping | None = None
    baseline: Mapping | None = None
    steered: Mapping | None = None
    # family -> its metrics/attack_<family>.json
    attack_families: Mapping[str, Mapping] | None = None
    gcg_suffixes: Any = None  # the gcg family's suffixes.json (config, targets, suffixes)
    gcg_losses: Mapping | None = None  # model -> GCG loss per step (index 0: the initial)
    samples: Mapping | None = None  # model -> the generation family's sample continuations
    latents: pd.DataFrame | None = None
    contexts: pd.DataFrame | None = None
    selected: pd.DataFrame | None = None
    clamp: Mapping | None = None
    # role -> the steered per-question results (evaluate's `{role}.parquet` files)
    steered_results: Mapping[str, pd.DataFrame] | None = None
    # stage -> {"key.path": seconds} read from the JSON files each stage writes
    # where each input came from, for the missing-input notes
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportOptions:
    title: str = "sae-unlearn report"
    contexts_per_latent: int = 3  # per selected latent and corpus
    max_text: int = 400  # longest suffix or continuation text shown


# How each input is read, by name (ReportInputs' field names).
_JSON_INPUTS = (
    "cache",
    "sae",
    "baseline",
    "steered",
    "gcg_suffixes",
    "gcg_losses",
    "samples",
    "clamp",
)
# `attack_<family>`: an attack family's metrics, gathered into `attack_families`
FAMILY_INPUTS = tuple(f"attack_{family}" for family in ATTACK_FAMILIES)
_PARQUET_INPUTS = ("latents", "contexts", "selected")
_FOLDER_INPUTS = ("steered_results",)  # a folder of `{role}.parquet`


def read_json_input(path: Path) -> Any:
    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path} is not valid JSON ({exc}); rerun its stage") from exc


def read_role_folder(folder: Path) -> dict[str, pd.DataFrame]:
    """The `{role}.parquet` files of `folder`, for the roles the report knows."""
    return {
        r: pd.read_parquet(folder / f"{r}.parquet")
        for r in ROLES
        if (folder / f"{r}.parquet").is_file()
    }


def load_inputs(
    paths: Mapping[str, Path],
    params: Mapping | None = None,
) -> ReportInputs:
    """ReportInputs from files by input name; a missing file leaves its input None."""
    loaded: dict[str, Any] = {}
    for name, path in paths.items():
        path = Path(path)
        if name in _FOLDER_INPUTS:
            if path.is_dir():
                loaded[name] = read_role_folder(path)
            continue
        if not path.is_file():
            continue
        if name in FAMILY_INPUTS:
            family = name.removeprefix("attack_")
            loaded.setdefault("attack_families", {})[family] = read_json_input(path)
        elif name in _JSON_INPUTS:
            loaded[name] = read_json_input(path)
        elif name in _PARQUET_INPUTS:
            loaded[name] = pd.read_parquet(path)
        else:
            raise ValueError(f"unknown report input {name!r}")
    sources = {name: str(path) for name, path in paths.items()}
    return ReportInputs(params=params or None, sources=sources, **loaded)


def param(params: Mapping | None, key: str, default: Any = None) -> Any:
    """A dotted key of the params mapping, or `default`."""
    node: Any = params or {}
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def primary_metric(inputs: ReportInputs) -> str:
    if inputs.steered and inputs.steered.get("primary_metric"):
        return str(inputs.steered["primary_metric"])
    return str(param(inputs.params, "evaluate.primary_metric", "acc"))


def model_name(inputs: ReportInputs) -> str:
    return str(param(inputs.params, "model.name", "") or "")


# --- run times: metrics of earlier versions may hold them; the report leaves them out ---


def is_timing_key(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")
