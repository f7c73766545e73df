"""What every attack family gives, per model, and how the baseline's and the steered
model's halves are written, checked and joined; `frozen`, for the families that fit tensors
of their own.

A family's stage pair (`attack-<family>-baseline`, `attack-<family>`) runs one model each:
the baseline's half does not read the clamp, so a clamp sweep point reruns only the steered
half, which joins the baseline's. A half is a folder of `metrics.json` (model -> setting ->
figures), `accuracy.json` (the same with full bootstrap summaries), any extra JSON records,
and `run.json`: the config and the questions, which the two halves must share. The families
that score the same prompts for both models (fewshot, icl, evasion) also keep, in the
baseline's half, each setting's packed rows' residual stream before the hook's layer
(`<setting>.residuals.safetensors`, `KeptRows`), where the steered half's rows start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from sae_unlearn.choices import ATTACK_FAMILIES
from sae_unlearn.errors import MissingInputError, UserError, read_input
from sae_unlearn.evaluation.gates import gate_summary
from sae_unlearn.evaluation.metrics import accuracy_summary
from sae_unlearn.evaluation.residuals import (
    RESIDUALS_SUFFIX,
    RowResiduals,
    read_residuals,
    write_residuals,
)
from sae_unlearn.io import atomic_dir, read_json, write_json

FAMILIES = ATTACK_FAMILIES
# The families whose two models score the same prompts, so the steered half's rows can start
# where the baseline half kept them (`KeptRows`).
SAME_PROMPT_FAMILIES = ("fewshot", "icl", "evasion")


@contextmanager
def frozen(modules: Iterable[nn.Module | None]) -> Iterator[None]:
    """No gradient kept for these modules' weights (a model, clamp hooks and their SAEs)
    while an attack fits its own tensors; their flags are restored after."""
    params = [p for module in modules if module is not None for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@dataclass
class FamilyOutputs:
    metrics: dict = field(default_factory=dict)  # model -> setting -> {acc, ...}; plus counts
    accuracy: dict = field(default_factory=dict)  # model -> setting -> accuracy summary
    records: dict[str, Any] = field(default_factory=dict)  # name -> JSON (e.g. samples)
    run_info: dict[str, Any] = field(default_factory=dict)  # timings: logs, never an output
    residuals: dict[str, RowResiduals] = field(default_factory=dict)  # setting -> kept rows


@dataclass
class KeptRows:
    """Per setting, the packed rows' residual stream before the hook's layer: the unsteered
    scoring keeps it (`block` set: the baseline's half), the steered scoring of the same
    prompts starts there (given the baseline half's), skipping the blocks below the hook."""

    block: int | None = None
    by_setting: dict[str, RowResiduals] = field(default_factory=dict)

    def for_run(self, setting: str, steered: bool) -> RowResiduals | None:
        if steered:
            return self.by_setting.get(setting)
        if self.block is None:
            return None
        return self.by_setting.setdefault(setting, RowResiduals(self.block, setting))

    def kept(self) -> dict[str, RowResiduals]:
        return {setting: rows for setting, rows in self.by_setting.items() if rows.tokens}


def add_setting(
    out: FamilyOutputs, model: str, setting: str, frame: pd.DataFrame, bootstrap: int, seed: int
) -> dict:
    """Score one (model, setting): accuracy with its 95% interval, and where the clamp's
    gate opened (`gate_share`: None for the unsteered baseline)."""
    summary = accuracy_summary(frame, bootstrap, seed)
    gate = gate_summary(frame)["share"] if "gate_opened" in frame else None
    out.accuracy.setdefault(model, {})[setting] = summary
    figures = {
        "acc": summary["acc"],
        "acc_ci": summary["acc_ci"],
        "gate_share": gate,
    }
    out.metrics.setdefault(model, {})[setting] = figures
    return figures


HALF_FILES = ("metrics", "accuracy", "run")


def write_family_half(outputs: FamilyOutputs, record: dict, folder: str | Path) -> None:
    clash = set(outputs.records) & set(HALF_FILES)
    if clash:  # a programming error: a record would overwrite the half's own files
        raise ValueError(f"attack records may not be named {sorted(clash)}")
    with atomic_dir(folder) as tmp:
        write_json(tmp / "metrics.json", outputs.metrics)
        write_json(tmp / "accuracy.json", outputs.accuracy)
        for name, data in outputs.records.items():
            write_json(tmp / f"{name}.json", data)
        for setting, rows in outputs.residuals.items():
            write_residuals(tmp / f"{setting}{RESIDUALS_SUFFIX}", rows)
        write_json(tmp / "run.json", record)


def read_family_half(folder: str | Path, record: dict, family: str) -> FamilyOutputs:
    """The baseline's half in `folder`, refused unless it ran with `record`'s config and
    questions."""
    folder = Path(folder)
    fix = f"run `sae-unlearn attack-family {family} --model baseline` (`dvc repro` does)"
    if not folder.is_dir():
        raise MissingInputError(f"no baseline {family} attack results in {folder}. Fix: {fix}")
    loaded = {
        path.stem: read_input(path, read_json, "attack results", fix)
        for path in sorted(folder.glob("*.json"))
    }
    for name in HALF_FILES:
        if name not in loaded:
            raise MissingInputError(f"{folder} has no {name}.json. Fix: {fix}")
    check_record(loaded["run"], record, folder, fix)
    extra = {k: v for k, v in loaded.items() if k not in HALF_FILES}
    residuals = {
        path.name.removesuffix(RESIDUALS_SUFFIX): read_residuals(path)
        for path in sorted(folder.glob(f"*{RESIDUALS_SUFFIX}"))
    }
    return FamilyOutputs(loaded["metrics"], loaded["accuracy"], extra, residuals=residuals)


def check_record(found: dict, record: dict, folder: Path, fix: str) -> None:
    """A baseline half must have run with this run's config and on its questions."""
    for key in record:
        if found.get(key) != record[key]:
            what = "with another attack config" if key == "config" else f"on other {key} questions"
            raise UserError(
                f"{folder} was attacked {what} than this run's. Fix: {fix} with the same "
                "params (dvc repro does)"
            )


def joined(first: Any, second: Any) -> Any:
    """Mappings joined key by key (`first`'s keys first); other values must agree."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        keys = list(first) + [k for k in second if k not in first]
        return {
            k: joined(first[k], second[k])
            if k in first and k in second
            else (first[k] if k in first else second[k])
            for k in keys
        }
    if first != second:
        raise ValueError(f"the two attack halves disagree: {first!r} vs {second!r}")
    return first


def join_family_halves(baseline: FamilyOutputs, steered: FamilyOutputs) -> FamilyOutputs:
    """One family's outputs for both models (keys present in both halves must agree)."""
    return FamilyOutputs(
        metrics=joined(baseline.metrics, steered.metrics),
        accuracy=joined(baseline.accuracy, steered.accuracy),
        records=joined(baseline.records, steered.records),
    )
