"""clamp-config: selected latents + clamp params -> clamp config (YAML) and steering CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.io import write_json
from sae_unlearn.saes import load_sae_dir
from sae_unlearn.steering import (
    MODES,
    ClampConfig,
    clamp_prime,
    gated_clamp,
    read_steering_csv,
    refusal_clamp,
    validate_rows,
    write_clamp_yaml,
    write_steering_csv,
)


def resolve_refusal_latent(value, model_dir: Path, sae, layer: int, dtype: str) -> int:
    """An explicit index, or `auto`: the latent most active on refusal vs neutral text."""
    if str(value).lower() != "auto":
        return int(value)
    from sae_unlearn.models import load_model
    from sae_unlearn.selection import find_refusal_latent

    model, tokenizer = load_model(str(model_dir), dtype)
    return int(find_refusal_latent(model, tokenizer, sae, layer))


def build_clamp_config(
    selected: pd.DataFrame, mode: str, layer: int, value: float, threshold: float, refusal: int
) -> ClampConfig:
    if "latent" not in selected.columns:
        raise typer.BadParameter(
            f"the selection has no `latent` column (columns: {list(selected.columns)}); "
            "produce it with `sae-unlearn select`"
        )
    ordered = selected.sort_values("rank")
    latents = ordered["latent"].astype(int).tolist()
    if mode == "clamp_prime":
        return clamp_prime(layer, latents, value)
    if mode == "gated_clamp":
        if "threshold" not in ordered.columns:
            raise typer.BadParameter(
                "clamp.mode=gated_clamp needs per-latent thresholds, but the selection has no "
                "`threshold` column; rerun `sae-unlearn select` (with select.threshold_rate)"
            )
        return gated_clamp(layer, latents, ordered["threshold"].astype(float).tolist(), value)
    return refusal_clamp(layer, latents, refusal, threshold, value)


def command(
    selection: Path | None = typer.Option(None, help="selected latents parquet (from select)"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory (sae-lens format)"),
    model_dir: Path | None = typer.Option(None, help="model dir (for refusal_latent: auto)"),
    csv: str | None = typer.Option(None, help="a steering CSV that replaces selection"),
    out_dir: Path | None = typer.Option(None, help="where clamp.yaml and steering.csv go"),
    params: Path = ParamsOption,
) -> None:
    """Selected latents + clamp params -> clamp config YAML and the paper's steering CSV."""
    with record_run_time() as run_time:
        p = Params.load(params)
        layer = int(p.get("sae.layer"))
        sae_path = Path(p.pick(sae_dir, "sae.dir"))
        out = Path(p.pick(out_dir, "clamp.dir"))
        sae = load_sae_dir(sae_path)
        csv_path = p.pick(csv, "clamp.csv", None)
        if csv_path:
            cfg = read_steering_csv(csv_path, layer)
        else:
            mode = p.get("clamp.mode")
            if mode not in MODES:
                raise typer.BadParameter(f"clamp.mode={mode!r}; use one of {MODES}")
            selection_path = selection or Path(p.get("select.dir")) / "selected.parquet"
            selected = pd.read_parquet(selection_path)
            refusal = -1
            if mode == "refusal_clamp":
                refusal = resolve_refusal_latent(
                    p.get("clamp.refusal_latent"),
                    Path(p.pick(model_dir, "model.dir")),
                    sae,
                    layer,
                    p.get("model.dtype", "float32"),
                )
            cfg = build_clamp_config(
                selected,
                mode,
                layer,
                float(p.get("clamp.value")),
                float(p.get("clamp.threshold", 0.05)),
                refusal,
            )
        validate_rows(cfg.rows, d_sae=int(sae.cfg.d_sae), source=str(csv_path or "the selection"))
        write_clamp_yaml(cfg, out / "clamp.yaml")
        write_steering_csv(cfg, out / "steering.csv")
        write_json(
            out / "summary.json",
            {"mode": cfg.mode, "layer": cfg.layer, "latents": cfg.latents, **cfg.meta},
        )
        typer.echo(f"{cfg.mode}: {len(cfg.rows)} rows at layer {cfg.layer} -> {out}")
        run_time["dir"] = out
