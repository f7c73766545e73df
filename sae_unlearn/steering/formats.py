"""Clamp configs on disk: our YAML, and the paper's steering CSV imported and exported as is."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import yaml

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
    write_yaml(path, data)


def read_clamp_yaml(path: str | Path) -> ClampConfig:
    """Read a clamp config YAML; one without a `gate` (written before gate kinds) is latched."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "rows" not in data or "layer" not in data:
        raise ValueError(f"{path} is not a clamp config (needs `layer` and `rows`)")
    rows = [SteeringRow(**row) for row in data["rows"]]
    validate_rows(rows, source=str(path))
    gate = Gate.from_dict(data.get("gate"), source=str(path))
    return ClampConfig(
        int(data["layer"]), rows, data.get("mode", "csv"), data.get("meta", {}), gate=gate
    )


def write_steering_csv(cfg: ClampConfig, path: str | Path) -> None:
    """Export the paper's steering CSV. It has no column for a gate, and reads back as
    latched, so a config with `clamp_gated` rows and another gate is refused."""
    if _gated(cfg) and cfg.gate.kind != "latched":
        raise ValueError(
            f"the steering CSV cannot carry the {cfg.gate.kind} gate (it reads back as "
            "latched); use the clamp YAML (write_clamp_yaml), or the latched gate"
        )
    frame = pd.DataFrame([asdict(r) for r in cfg.rows], columns=CSV_COLUMNS)
    frame["refuse_id"] = frame["refuse_id"].astype("Int64")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _number(value) -> float:
    return 0.0 if pd.isna(value) else float(value)


def read_steering_csv(path: str | Path, layer: int) -> ClampConfig:
    """Import a steering CSV in the paper's format, as is."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks steering CSV columns {missing}; expected columns {CSV_COLUMNS}"
        )
    rows = []
    for n, rec in enumerate(frame.to_dict("records")):
        try:
            refuse = rec["refuse_id"]
            rows.append(
                SteeringRow(
                    latent_idx=int(rec["latent_idx"]),
                    hook_action=str(rec["hook_action"]).strip(),
                    refuse_id=None if pd.isna(refuse) else int(refuse),
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
            raise ValueError(
                f"{path} row {n + 2}: {err}; numeric columns must hold numbers"
            ) from err
    validate_rows(rows, source=str(path))
    actions = {r.hook_action for r in rows}
    modes = {"clamp": "clamp_prime", "clamp_refusal": "refusal_clamp", "clamp_gated": "gated_clamp"}
    name = modes.get(next(iter(actions)), "csv") if len(actions) == 1 else "csv"
    return ClampConfig(layer, rows, mode=name, meta={"source_csv": str(path)})
