"""clamp-config: selected latents + clamp params -> clamp config (YAML) and steering CSV.

The gate of `clamp_gated` rows comes from `clamp.gate`; the token-share gate's tau is
calibrated here on the cached retain corpora (`cache.dir`: retain, and retain_near when
cached). The paper's CSV cannot carry a gate other than latched, so it is not written then.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_dir, write_json
from sae_unlearn.saes import sae_dir_checked
from sae_unlearn.saes.identity import check_csv_sae_names, sae_identity
from sae_unlearn.steering import (
    ClampConfig,
    Gate,
    from_selection,
    read_steering_csv,
    validate_rows,
    write_clamp_yaml,
    write_steering_csv,
)

# The SAE and the model load only for what needs their weights (`refusal_latent: auto`, the
# token_share gate's tau): the default writes its config from the selection and the SAE's
# cfg.json alone, in a process that never imports torch (under a second, against 6.7 s).


def refusal_latent(p: Params, model_dir: Path | None, sae_path: Path) -> int | None:
    """`clamp.refusal_latent`: an index, or `auto` (most active on refusal vs neutral text)."""
    value = p.get("clamp.refusal_latent")
    if p.get("clamp.mode") != "refusal_clamp" or value != "auto":
        return None if value == "auto" else int(value)
    from sae_unlearn.models import load_model
    from sae_unlearn.saes import load_sae_dir
    from sae_unlearn.selection import find_refusal_latent

    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    sae = load_sae_dir(sae_path)
    return int(find_refusal_latent(model, tokenizer, sae, p.get("sae.layer")))


def gate_of(p: Params, cfg: ClampConfig, sae_path: Path) -> Gate:
    """`clamp.gate` for the config's `clamp_gated` rows, tau calibrated for token_share."""
    kind = p.get("clamp.gate")
    gated = [r for r in cfg.rows if r.hook_action == "clamp_gated"]
    if kind == "latched" or not gated:
        return Gate()
    if kind == "window":
        return Gate("window", window=int(p.get("clamp.gate_window")))
    from sae_unlearn.activations.layout import MANIFEST
    from sae_unlearn.saes import load_sae_dir
    from sae_unlearn.selection.share import calibrate_tau

    cache = Path(p.get("cache.dir"))
    retain = cache / "retain"
    if not (retain / MANIFEST).exists():
        raise UserError(
            f"clamp.gate=token_share calibrates tau on {retain}, which is not a complete "
            "cache; run `sae-unlearn cache` first (or check cache.dir)"
        )
    paths = [retain]
    if (cache / "retain_near" / MANIFEST).exists():
        paths.append(cache / "retain_near")
    tau = calibrate_tau(
        load_sae_dir(sae_path),
        paths,
        cfg.layer,
        [r.latent_idx for r in gated],
        [r.clamp_value for r in gated],
        chunk=int(p.get("clamp.gate_chunk")),
        quantile=float(p.get("clamp.gate_quantile")),
    )
    typer.echo(f"token_share tau = {tau:.6g} (from {', '.join(x.name for x in paths)})")
    if tau >= 1.0:
        raise UserError(
            f"clamp.gate=token_share: calibrated tau = {tau} on {[str(x) for x in paths]}: the "
            "gated latents trigger on every token of those chunks; lower clamp.gate_quantile, "
            "or make the thresholds stricter (select.threshold_rate)"
        )
    return Gate("token_share", tau=tau)


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
        sae_path = sae_dir_checked(p.pick(sae_dir, "sae.dir"))
        identity = sae_identity(sae_path)
        csv_path = p.pick(csv, "clamp.csv")
        if csv_path:
            cfg = read_steering_csv(csv_path, layer)
            names = [(r.sae_release, r.sae_id) for r in cfg.rows]
            check_csv_sae_names(names, identity, str(csv_path))
        else:
            selected = pd.read_parquet(selection or Path(p.get("select.dir")) / "selected.parquet")
            clamp = p.get("clamp")
            cfg = from_selection(
                selected, clamp["mode"], layer, clamp["value"], clamp["threshold"],
                refusal_latent(p, model_dir, sae_path),
            )  # fmt: skip
        validate_rows(cfg.rows, d_sae=identity["d_sae"], source=str(csv_path or "selection"))
        cfg.gate = gate_of(p, cfg, sae_path)
        cfg.sae = identity
        summary = {"mode": cfg.mode, "layer": cfg.layer, "latents": cfg.latents, **cfg.meta}
        if any(r.hook_action == "clamp_gated" for r in cfg.rows):
            summary["gate"] = cfg.gate.as_dict()
        # One folder, renamed into place whole: an interrupted run leaves the old config or
        # the new one, never a new clamp.yaml beside an old steering.csv.
        with atomic_dir(out) as tmp:
            write_clamp_yaml(cfg, tmp / "clamp.yaml")
            if cfg.gate.kind == "latched":
                write_steering_csv(cfg, tmp / "steering.csv")
            else:
                typer.echo(
                    f"no steering.csv: the paper's CSV cannot carry the {cfg.gate.kind} gate"
                )
            write_json(tmp / "summary.json", summary)
        typer.echo(f"{cfg.mode}: {len(cfg.rows)} rows at layer {cfg.layer} -> {out}")
