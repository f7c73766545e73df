"""What the report reads: every stage output it can show, each optional, and the run times
the stages recorded themselves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sae_unlearn.io import read_json

# Larger JSON files are data, not run summaries: not searched for run times.
MAX_TIMING_JSON = 1 << 20
GCG_LOSS_COLUMNS = {"step", "model", "loss"}


class ReportInputError(ValueError):
    """An input exists but cannot be read; its message says which stage to rerun."""


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


# How each input is read, by name (ReportInputs' field names).
_JSON_INPUTS = ("cache", "sae", "baseline", "steered", "attack", "suffixes", "clamp")
_PARQUET_INPUTS = ("latents", "contexts", "selected")


def read_json_input(path: Path) -> Any:
    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path} is not valid JSON ({exc}); rerun its stage") from exc


def read_gcg_loss(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = GCG_LOSS_COLUMNS - set(frame.columns)
    if missing:
        raise ReportInputError(f"{path} lacks columns {sorted(missing)}; rerun the attack stage")
    return frame


def load_inputs(
    paths: Mapping[str, Path],
    params: Mapping | None = None,
    timings: Mapping[str, Mapping[str, float]] | None = None,
) -> ReportInputs:
    """ReportInputs from files by input name; a missing file leaves its input None."""
    loaded: dict[str, Any] = {}
    for name, path in paths.items():
        path = Path(path)
        if not path.is_file():
            continue
        if name in _JSON_INPUTS:
            loaded[name] = read_json_input(path)
        elif name in _PARQUET_INPUTS:
            loaded[name] = pd.read_parquet(path)
        elif name == "gcg_loss":
            loaded[name] = read_gcg_loss(path)
        else:
            raise ValueError(f"unknown report input {name!r}")
    sources = {name: str(path) for name, path in paths.items()}
    return ReportInputs(params=params or None, timings=timings, sources=sources, **loaded)


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


# --- run times ----------------------------------------------------------------------------


def is_timing_key(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")


def find_seconds(data: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric `seconds` / `*_seconds` leaf of a JSON structure, by key path."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            is_time = is_timing_key(str(key))
            if is_time and isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = float(value)
            else:
                out.update(find_seconds(value, name))
    return out


def stage_timings(files: Mapping[str, list[str]]) -> dict[str, dict[str, float]]:
    """Run times the stages recorded themselves (`seconds`, `*_seconds` keys) in the JSON
    they write: a JSON out, or the JSON files directly inside an out directory."""
    timings: dict[str, dict[str, float]] = {}
    for stage, paths in files.items():
        found: dict[str, float] = {}
        for path in map(Path, paths):
            candidates = sorted(path.glob("*.json")) if path.is_dir() else [path]
            for candidate in candidates:
                if candidate.suffix != ".json" or not candidate.is_file():
                    continue
                if candidate.stat().st_size > MAX_TIMING_JSON:
                    continue
                try:
                    data = read_json(candidate)
                except json.JSONDecodeError:
                    continue
                for key, seconds in find_seconds(data).items():
                    found[f"{candidate.name}:{key}"] = seconds
        timings[stage] = found
    return timings
