"""Clamp configs on disk: our YAML, and the paper's steering CSV imported and exported as is."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from sae_unlearn.errors import UserError, read_input, read_yaml_input
from sae_unlearn.io import atomic_path, write_yaml
from sae_unlearn.steering.rows import CSV_COLUMNS, ClampConfig, Gate, SteeringRow, validate_rows


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
    validate_rows(rows, source=str(path))
    gate = Gate.from_dict(data.get("gate"), source=str(path))
    meta = data.get("meta") or {}
    mode = data.get("mode", "csv")
    return ClampConfig(int(data["layer"]), rows, mode, meta, gate=gate, sae=data.get("sae") or {})


def write_steering_csv(cfg: ClampConfig, path: str | Path) -> None:
    """Export the paper's steering CSV. It has no column for a gate, and reads back as
    latched, so a config with `clamp_gated` rows and another gate is refused."""
    if _gated(cfg) and cfg.gate.kind != "latched":
        raise UserError(
            f"the steering CSV cannot carry the {cfg.gate.kind} gate (it reads back as "
            "latched); use the clamp YAML (write_clamp_yaml), or the latched gate"
        )
    frame = pd.DataFrame([asdict(r) for r in cfg.rows], columns=CSV_COLUMNS)
    frame["refuse_id"] = frame["refuse_id"].astype("Int64")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _number(value) -> float:
    return 0.0 if pd.isna(value) else float(value)


def _index(value: object, column: str) -> int:
    """An integer column (a latent index): 12 and 12.0 are latent 12; 12.7 is refused
    rather than truncated to latent 12."""
    number = float(value)  # type: ignore[arg-type]
    if not number.is_integer():
        raise ValueError(f"{column}={value!r} is not an integer latent index")
    return int(number)


def read_steering_csv(path: str | Path, layer: int) -> ClampConfig:
    """Import a steering CSV in the paper's format, as is."""
    fix = "write a steering CSV in the paper's format (README: The method)"
    frame = read_input(
        path,
        lambda p: pd.read_csv(p, keep_default_na=False, na_values=[""]),
        "steering CSV",
        fix,
    )
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path} lacks steering CSV columns {missing}; expected columns {CSV_COLUMNS}"
        )
    rows = []
    for n, rec in enumerate(frame.to_dict("records")):
        try:
            refuse = rec["refuse_id"]
            rows.append(
                SteeringRow(
                    latent_idx=_index(rec["latent_idx"], "latent_idx"),
                    hook_action=str(rec["hook_action"]).strip(),
                    refuse_id=None if pd.isna(refuse) else _index(refuse, "refuse_id"),
                    clamp_value=float(rec["clamp_value"])
                    if not pd.isna(rec["clamp_value"])
                    else 0.0,
                    steering_coefficient=float(rec["steering_coefficient"])
                    if not pd.isna(rec["steering_coefficient"])
                    else 0.0,
                    sae_id="" if pd.isna(rec["sae_id"]) else str(rec["sae_id"]),
                    sae_release="" if pd.isna(rec["sae_release"]) else str(rec["sae_release"]),
                    description="" if pd.isna(rec["description"]) else str(rec["description"]),
                )
            )
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
