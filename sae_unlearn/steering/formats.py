"""Clamp configs on disk: our YAML, and the paper's steering CSV imported and exported as is."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from sae_unlearn.errors import UserError, read_input, read_yaml_input
from sae_unlearn.io import atomic_path, write_yaml
from sae_unlearn.steering.rows import (
    ACTIONS,
    CSV_COLUMNS,
    CSV_REQUIRED,
    THRESHOLD_ACTIONS,
    ClampConfig,
    Gate,
    SteeringRow,
    validate_rows,
)


def _gated(cfg: ClampConfig) -> bool:
    return any(r.hook_action == "clamp_gated" for r in cfg.rows)


def write_clamp_yaml(cfg: ClampConfig, path: str | Path) -> None:
    """Write our clamp config YAML; configs with `clamp_gated` rows also carry their gate."""
    data = {
        "layer": cfg.layer,
        "mode": cfg.mode,
        "meta": cfg.meta,
        "rows": [asdict(r) for r in cfg.rows],
    }
    if _gated(cfg):
        data["gate"] = cfg.gate.as_dict()
    if cfg.sae:
        data["sae"] = dict(cfg.sae)
    write_yaml(path, data)


def read_clamp_yaml(path: str | Path) -> ClampConfig:
    """Read a clamp config YAML; one without a `gate` (written before gate kinds) is latched."""
    fix = "point at a clamp.yaml written by `sae-unlearn clamp-config`"
    data = read_yaml_input(path, "clamp config", fix)
    if not isinstance(data, dict) or "rows" not in data or "layer" not in data:
        raise UserError(f"{path} is not a clamp config (needs `layer` and `rows`). Fix: {fix}")
    known = {f.name for f in fields(SteeringRow)}
    for n, row in enumerate(data["rows"] or []):
        if not isinstance(row, dict) or set(row) - known:
            raise UserError(
                f"{path}: rows[{n}] is not a steering row ({row!r:.80}); "
                f"a row has the keys {sorted(known)}"
            )
    rows = [SteeringRow(**row) for row in data["rows"] or []]
    for n, row in enumerate(rows):
        # Before the authors' meaning was adopted, `clamp` rows held their value in
        # clamp_value; read now, such a row would clamp to 0 without a word.
        if row.hook_action == "clamp" and row.clamp_value != 0 and row.steering_coefficient == 0:
            raise UserError(
                f"{path}: rows[{n}] is a clamp row with clamp_value={row.clamp_value} and "
                "steering_coefficient=0, written when clamp read its value from clamp_value; "
                "clamp now sets steering_coefficient, as in the authors' CSV. Fix: rerun "
                "`sae-unlearn clamp-config`, or move the value to steering_coefficient"
            )
    validate_rows(rows, source=str(path))
    gate = Gate.from_dict(data.get("gate"), source=str(path))
    meta = data.get("meta") or {}
    mode = data.get("mode", "csv")
    return ClampConfig(int(data["layer"]), rows, mode, meta, gate=gate, sae=data.get("sae") or {})


def _csv_columns(rows: list[SteeringRow]) -> list[str]:
    """The columns a file of these rows needs, in the authors' order: a Clamp Prime file
    has neither `refuse_id` nor `clamp_value`, as theirs has not."""
    actions = {r.hook_action for r in rows}
    return [
        c
        for c in CSV_COLUMNS
        if (c != "refuse_id" or "clamp_refusal" in actions)
        and (c != "clamp_value" or actions & set(THRESHOLD_ACTIONS))
    ]


def write_steering_csv(cfg: ClampConfig, path: str | Path) -> None:
    """Export the paper's steering CSV, in the authors' layout and meaning. It has no column
    for a gate, and reads back as latched, so a config with `clamp_gated` rows and another
    gate is refused. (`clamp_gated` is ours: the authors' code does not know it.)"""
    if _gated(cfg) and cfg.gate.kind != "latched":
        raise UserError(
            f"the steering CSV cannot carry the {cfg.gate.kind} gate (it reads back as "
            "latched); use the clamp YAML (write_clamp_yaml), or the latched gate"
        )
    records = []
    for r in cfg.rows:
        record = asdict(r)
        # Their reader casts every row's refuse_id to int where the column exists, so rows
        # of other actions (which ignore it) carry their own latent rather than a blank.
        if r.hook_action != "clamp_refusal":
            record["refuse_id"] = r.latent_idx
        if r.hook_action not in THRESHOLD_ACTIONS:
            record["clamp_value"] = None  # unread by the action: left blank
        records.append(record)
    frame = pd.DataFrame(records, columns=_csv_columns(cfg.rows))
    if "refuse_id" in frame.columns:
        frame["refuse_id"] = frame["refuse_id"].astype("Int64")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _index(value: object, column: str) -> int:
    """An integer column (a latent index): 12 and 12.0 are latent 12; 12.7 is refused
    rather than truncated to latent 12."""
    number = _number(value, column)
    if not number.is_integer():
        raise ValueError(f"{column}={value!r} is not an integer latent index")
    return int(number)


class _Missing(ValueError):
    """A cell an action needs is empty: the message names the fix itself."""


def _number(value: object, column: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{column}={value!r} is not a number") from None


def _text(rec: dict, column: str) -> str:
    value = rec.get(column)
    return "" if value is None or pd.isna(value) else str(value)


def _row(rec: dict) -> SteeringRow:
    """One record as the authors' reader takes it: no `hook_action` column means `add`;
    `clamp_value` is read only by the threshold actions and `refuse_id` only by
    `clamp_refusal`, which must have them (their reader would fail, or compare with NaN)."""
    action = _text(rec, "hook_action").strip() if "hook_action" in rec else "add"
    if not action:
        raise _Missing(f"hook_action is empty; use one of {list(ACTIONS)}")
    value = rec["steering_coefficient"]
    if pd.isna(value):
        raise _Missing(
            f"steering_coefficient is empty; {action} needs it (the value the latent is set "
            "to, or for add the multiple of its decoder direction)"
        )
    threshold = rec.get("clamp_value")
    if action in THRESHOLD_ACTIONS and (threshold is None or pd.isna(threshold)):
        raise _Missing(
            f"{action} needs clamp_value (its threshold; -inf for none), "
            "and the file has none for this row"
        )
    refuse = rec.get("refuse_id")
    if action == "clamp_refusal" and (refuse is None or pd.isna(refuse)):
        raise _Missing("clamp_refusal needs refuse_id (the refusal latent)")
    return SteeringRow(
        latent_idx=_index(rec["latent_idx"], "latent_idx"),
        hook_action=action,
        refuse_id=_index(refuse, "refuse_id") if action == "clamp_refusal" else None,
        clamp_value=_number(threshold, "clamp_value") if action in THRESHOLD_ACTIONS else 0.0,
        steering_coefficient=_number(value, "steering_coefficient"),
        sae_id=_text(rec, "sae_id"),
        sae_release=_text(rec, "sae_release"),
        description=_text(rec, "description"),
    )


def read_steering_csv(path: str | Path, layer: int) -> ClampConfig:
    """Import a steering CSV in the authors' format, with their meaning (`rows.py`)."""
    fix = "write a steering CSV in the paper's format (README: The method)"
    frame = read_input(
        path,
        lambda p: pd.read_csv(p, keep_default_na=False, na_values=[""]),
        "steering CSV",
        fix,
    )
    missing = [c for c in CSV_REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path} lacks steering CSV columns {missing}; the paper's format needs "
            f"{CSV_REQUIRED} and may add {[c for c in CSV_COLUMNS if c not in CSV_REQUIRED]}"
        )
    rows = []
    for n, rec in enumerate(frame.to_dict("records")):
        try:
            rows.append(_row(rec))
        except _Missing as err:
            raise UserError(f"{path} row {n + 2}: {err}") from None
        except (TypeError, ValueError) as err:
            raise UserError(
                f"{path} row {n + 2}: {err}; numeric columns must hold numbers, and "
                "latent_idx / refuse_id integer latent indices"
            ) from None
    validate_rows(rows, source=str(path))
    actions = {r.hook_action for r in rows}
    modes = {"clamp": "clamp_prime", "clamp_refusal": "refusal_clamp", "clamp_gated": "gated_clamp"}
    name = modes.get(next(iter(actions)), "csv") if len(actions) == 1 else "csv"
    return ClampConfig(layer, rows, mode=name, meta={"source_csv": str(path)})
