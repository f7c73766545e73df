"""The clamp modes as clamp configs: the paper's Clamp Prime and Refusal-clamp, and ours."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sae_unlearn.errors import UserError
from sae_unlearn.steering.rows import MODES, ClampConfig, Gate, SteeringRow


def clamp_prime(
    layer: int, latents: Sequence[int], value: float, sae_release: str = "", sae_id: str = ""
) -> ClampConfig:
    """Clamp Prime: where latent i fires, f_i = value (the authors' `clamp` rows carry it in
    steering_coefficient; clamp_value is unused)."""
    rows = [
        SteeringRow(int(i), "clamp", None, 0.0, float(value), sae_id, sae_release, "")
        for i in latents
    ]
    return ClampConfig(layer, rows, mode="clamp_prime", meta={"value": float(value)})


def refusal_clamp(
    layer: int,
    latents: Sequence[int],
    refusal_latent: int,
    threshold: float,
    value: float,
    sae_release: str = "",
    sae_id: str = "",
) -> ClampConfig:
    rows = [
        SteeringRow(
            int(i),
            "clamp_refusal",
            int(refusal_latent),
            float(threshold),
            float(value),
            sae_id,
            sae_release,
            "",
        )
        for i in latents
    ]
    meta = {"value": float(value), "threshold": float(threshold), "refusal_latent": refusal_latent}
    return ClampConfig(layer, rows, mode="refusal_clamp", meta=meta)


def gated_clamp(
    layer: int,
    latents: Sequence[int],
    thresholds: Sequence[float],
    value: float,
    sae_release: str = "",
    sae_id: str = "",
    gate: Gate | None = None,
) -> ClampConfig:
    """Gated clamp: the selected latents, each with its calibrated gate threshold, opening
    as `gate` says (default: latched)."""
    gate = gate or Gate()
    gate.check()
    if len(thresholds) != len(latents):
        raise UserError(
            f"gated_clamp needs one threshold per latent ({len(latents)} latents, "
            f"{len(thresholds)} thresholds)"
        )
    rows = [
        SteeringRow(int(i), "clamp_gated", None, float(t), float(value), sae_id, sae_release, "")
        for i, t in zip(latents, thresholds, strict=True)
    ]
    return ClampConfig(layer, rows, mode="gated_clamp", meta={"value": float(value)}, gate=gate)


def from_selection(
    selected: pd.DataFrame,
    mode: str,
    layer: int,
    value: float,
    threshold: float = 0.05,
    refusal_latent: int | None = None,
    gate: Gate | None = None,
) -> ClampConfig:
    """A clamp mode over the latents `select` chose, in rank order; `gate` is how the
    gated_clamp mode opens (default: latched; other modes have no gate)."""
    if mode not in MODES:
        raise UserError(f"clamp.mode={mode!r}; use one of {list(MODES)}")
    if "latent" not in selected.columns:
        raise UserError(
            f"the selection has no `latent` column (columns: {list(selected.columns)}); "
            "produce it with `sae-unlearn select`"
        )
    ordered = selected.sort_values("rank")
    latents = ordered["latent"].astype(int).tolist()
    if mode == "clamp_prime":
        return clamp_prime(layer, latents, value)
    if mode == "gated_clamp":
        if "threshold" not in ordered.columns:
            raise UserError(
                "clamp.mode=gated_clamp needs per-latent thresholds, but the selection has no "
                "`threshold` column; rerun `sae-unlearn select` with select.threshold_rate set"
            )
        thresholds = ordered["threshold"].astype(float).tolist()
        return gated_clamp(layer, latents, thresholds, value, gate=gate)
    if refusal_latent is None:
        raise UserError("clamp.mode=refusal_clamp needs a refusal latent")
    return refusal_clamp(layer, latents, refusal_latent, threshold, value)
