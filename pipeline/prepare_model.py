"""prepare-model: materialise the model as a local safetensors directory."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.models.layers import num_layers
from sae_unlearn.models.loading import ModelConfig, load_model, prepare_model


def command(
    name: str | None = typer.Option(None, help="`embedded`, a hub id, or a local model dir"),
    dtype: str | None = typer.Option(None, help="float32 | bfloat16 | float16"),
    out: Path | None = typer.Option(None, help="output model directory"),
    params: Path = ParamsOption,
) -> None:
    """Materialise the model (embedded GGUF, hub id or local dir) as a safetensors directory."""
    with record_run_time():
        p = Params.load(params)
        cfg = ModelConfig(name=p.pick(name, "model.name"), dtype=p.pick(dtype, "model.dtype"))
        out_dir = Path(p.pick(out, "model.dir"))
        prepare_model(cfg, out_dir)
        model, _ = load_model(str(out_dir), cfg.dtype, device="cpu")
        n_layers = num_layers(model)
        typer.echo(f"model {cfg.name} ({n_layers} layers) saved to {out_dir}")
