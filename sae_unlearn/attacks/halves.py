"""The attacks' two halves, run apart and joined: each model's attacks are independent, so
the baseline's half runs once (`attack-baseline`, which does not read the clamp) and a clamp
sweep point reruns only the steered half, which joins the baseline's into the outputs the
report reads.

A half is a folder of the outputs (`metrics.json`, `accuracy.json`, `suffixes.json`,
`gcg_loss.csv`) and `run.json`: the attack config and the questions it ran on, which the
steered half must share with the baseline's half it joins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from sae_unlearn.attacks.run import AttackConfig, AttackOutputs
from sae_unlearn.errors import MissingInputError, UserError, read_input
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from sae_unlearn.io import atomic_dir, read_json, write_json

HALF_JSON = ("metrics", "accuracy", "suffixes", "run")


def half_record(cfg: AttackConfig, forget: pd.DataFrame, retain: pd.DataFrame) -> dict:
    """What two halves must share to be joined: the attack config, and the questions."""
    config = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as the file keeps them
    return {
        "config": config,
        "forget": question_fingerprint(forget),
        "retain": question_fingerprint(retain),
    }


def write_half(outputs: AttackOutputs, record: dict, folder: str | Path) -> None:
    with atomic_dir(folder) as tmp:
        write_json(tmp / "metrics.json", outputs.metrics)
        write_json(tmp / "accuracy.json", outputs.accuracy)
        write_json(tmp / "suffixes.json", outputs.suffixes)
        write_json(tmp / "run.json", record)
        outputs.loss_curves.to_csv(tmp / "gcg_loss.csv", index=False)


def read_half(folder: str | Path, record: dict) -> AttackOutputs:
    """The half in `folder`, refused unless it ran with `record`'s config and questions."""
    folder = Path(folder)
    fix = "run `sae-unlearn attack-baseline` (or `dvc repro attack`) first"
    if not folder.is_dir():
        raise MissingInputError(f"no baseline attack results in {folder}. Fix: {fix}")
    loaded = {}
    for name in HALF_JSON:
        loaded[name] = read_input(folder / f"{name}.json", read_json, "attack results", fix)
    curves = read_input(folder / "gcg_loss.csv", pd.read_csv, "attack results", fix)
    check_record(loaded["run"], record, folder, "rerun `sae-unlearn attack-baseline`")
    return AttackOutputs(loaded["metrics"], loaded["accuracy"], loaded["suffixes"], curves, {})


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


def join_halves(baseline: AttackOutputs, steered: AttackOutputs) -> AttackOutputs:
    """One run's outputs, as both models attacked together give them."""
    suffixes = joined(
        {k: v for k, v in baseline.suffixes.items() if k != "samples"},
        {k: v for k, v in steered.suffixes.items() if k != "samples"},
    )
    samples = [
        joined(a, b)
        for a, b in zip(baseline.suffixes["samples"], steered.suffixes["samples"], strict=True)
    ]
    return AttackOutputs(
        metrics=joined(baseline.metrics, steered.metrics),
        accuracy=joined(baseline.accuracy, steered.accuracy),
        suffixes={**suffixes, "samples": samples},
        loss_curves=pd.concat([baseline.loss_curves, steered.loss_curves], ignore_index=True),
        run_info=steered.run_info,
    )
