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
    from_selection,
    read_steering_csv,
    validate_rows,
    write_clamp_yaml,
    write_steering_csv,
)


def refusal_latent(p: Params, model_dir: Path | None, sae) -> int | None:
    """`clamp.refusal_latent`: an index, or `auto` (most active on refusal vs neutral text)."""
    value = p.get("clamp.refusal_latent")
    if p.get("clamp.mode") != "refusal_clamp" or value != "auto":
        return None if value == "auto" else int(value)
    from sae_unlearn.models import load_model
    from sae_unlearn.selection import find_refusal_latent

    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    return int(find_refusal_latent(model, tokenizer, sae, p.get("sae.layer")))


def command(
    selection: Path | None = typer.Option(None, help="selected latents parquet (from select)"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory (sae-lens format)"),
    model_dir: Path | None = typer.Option(None, help="model dir (for refusal_latent: auto)"),
    csv: str | None = typer.Option(None, help="a steering CSV that replaces selection"),
    out_dir: Path | None = typer.Option(None, help="where clamp.yaml and steering.csv go"),
    params: Path = ParamsOption,
) -> None:
    """Selected latents + clamp params -> clamp config YAML and the paper's steering CSV."""
    with record_run_time():
        p = Params.load(params)
        layer, out = p.get("sae.layer"), Path(p.pick(out_dir, "clamp.dir"))
        sae = load_sae_dir(Path(p.pick(sae_dir, "sae.dir")))
        csv_path = p.pick(csv, "clamp.csv")
        try:
            if csv_path:
                cfg = read_steering_csv(csv_path, layer)
            else:
                selected = pd.read_parquet(
                    selection or Path(p.get("select.dir")) / "selected.parquet"
                )
                clamp = p.get("clamp")
                cfg = from_selection(
                    selected, clamp["mode"], layer, clamp["value"], clamp["threshold"],
                    refusal_latent(p, model_dir, sae),
                )  # fmt: skip
            validate_rows(cfg.rows, d_sae=int(sae.cfg.d_sae), source=str(csv_path or "selection"))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        write_clamp_yaml(cfg, out / "clamp.yaml")
        write_steering_csv(cfg, out / "steering.csv")
        summary = {"mode": cfg.mode, "layer": cfg.layer, "latents": cfg.latents, **cfg.meta}
        write_json(out / "summary.json", summary)
        typer.echo(f"{cfg.mode}: {len(cfg.rows)} rows at layer {cfg.layer} -> {out}")
