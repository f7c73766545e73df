"""train-sae: one local SAE directory (`sae.dir`) whatever `sae.source` is.

- `train`: train on the cached activations of `sae.layer` (forget + retain, special tokens
  excluded), holding out `sae.train.held_out_fraction` of the sequences for evaluation.
- `pretrained` / `path`: load the SAE, check it fits the model, save a local copy, and
  evaluate it on all cached tokens.

Downstream stages always read `sae.dir`, so they never need network access or care
where the SAE came from.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.activations.read import check_caches, corpus_cache_paths
from sae_unlearn.io import write_json
from sae_unlearn.models.loading import resolve_device
from sae_unlearn.saes.config import SAESourceConfig, SAETrainConfig
from sae_unlearn.saes.from_cache import layer_sae_metrics, load_for_cache, train_on_cache
from sae_unlearn.saes.io import check_sae_matches_model, save_sae


def _train_config(p: Params, training_tokens: int | None) -> SAETrainConfig:
    train_params = dict(p.get("sae.train") or {})
    if train_params.get("seed") is None:  # null: the top-level seed
        train_params["seed"] = int(p.get("seed"))
    if training_tokens is not None:
        train_params["training_tokens"] = training_tokens
    return SAETrainConfig.from_dict(train_params)


def command(
    cache_dir: Path | None = typer.Option(None, help="activation cache directory"),
    out_dir: Path | None = typer.Option(None, help="SAE directory to write (sae-lens format)"),
    metrics: Path | None = typer.Option(None, help="SAE metrics JSON"),
    layer: int | None = typer.Option(None, help="hook layer (residual stream after block L)"),
    source: str | None = typer.Option(None, help="train | pretrained | path"),
    release: str | None = typer.Option(None, help="sae-lens release (source: pretrained)"),
    sae_id: str | None = typer.Option(None, help="SAE id in the release (source: pretrained)"),
    path: Path | None = typer.Option(None, help="sae-lens SAE directory (source: path)"),
    training_tokens: int | None = typer.Option(None, help="override sae.train.training_tokens"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:i]"),
    params: Path = ParamsOption,
) -> None:
    p = Params.load(params)
    sae_layer = int(p.pick(layer, "sae.layer"))
    sae_path = p.pick(path, "sae.path")
    src = SAESourceConfig(
        source=p.pick(source, "sae.source"),
        release=p.pick(release, "sae.release"),
        sae_id=p.pick(sae_id, "sae.sae_id"),
        path=str(sae_path) if sae_path else None,
    )
    cache_path = Path(p.pick(cache_dir, "cache.dir"))
    sae_dir = Path(p.pick(out_dir, "sae.dir"))
    metrics_path = Path(p.pick(metrics, "sae.metrics"))
    dev = str(resolve_device(device))
    with record_run_time() as timings:
        # every cached corpus: the more varied the text, the fewer dead latents
        paths = list(corpus_cache_paths(cache_path).values())
        d_model = check_caches(paths, sae_layer)
        if src.source == "train":
            cfg = _train_config(p, training_tokens)
            model_name = p.get("model.name")
            result = train_on_cache(paths, sae_layer, cfg, model_name=model_name, device=dev)
        else:
            result = load_for_cache(src, paths, sae_layer, device=dev)
        timings["train_seconds"] = result.seconds
        check_sae_matches_model(result.sae, d_model, src.origin)
        save_sae(result.sae, sae_dir)
        summary = layer_sae_metrics(result)
        write_json(metrics_path, summary)
    typer.echo(
        f"SAE ({src.source}, {summary['architecture']}, d_sae={summary['d_sae']}) -> {sae_dir}: "
        f"explained variance {summary['explained_variance']:.3f}, l0 {summary['l0']:.1f}, "
        f"dead {summary['dead_fraction']:.3f} on {summary['n_tokens']} {result.eval_split} tokens"
    )
