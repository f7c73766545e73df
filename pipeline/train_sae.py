"""train-sae: one local SAE directory (`sae.dir`) whatever `sae.source` is.

- `train`: train on the cached activations of `sae.layer` (forget + retain, special tokens
  excluded), holding out `sae.train.held_out_fraction` of the sequences for evaluation.
- `pretrained` / `path`: load the SAE, check it fits the model, save a local copy, and
  evaluate it on all cached tokens.

Downstream stages always read `sae.dir`, so they never need network access or care
where the SAE came from.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import torch
import typer
from tqdm.auto import tqdm

from pipeline.params import Params, ParamsOption
from sae_unlearn.activations import cache_metadata, iter_activations, read_tokens
from sae_unlearn.io import write_json
from sae_unlearn.models import resolve_device
from sae_unlearn.saes import (
    SAESourceConfig,
    SAETrainConfig,
    check_sae_matches_model,
    describe_sae,
    evaluate_sae,
    load_sae,
    save_sae,
    train_sae,
)

CORPORA = ("forget", "retain")


def read_layer(path: Path, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-special activations of `layer` and the sequence id of each token."""
    sequence_ids = torch.from_numpy(read_tokens(path).column("sequence_id").to_numpy())
    acts, seqs = [], []
    for batch, rows in tqdm(iter_activations(path, layer), desc=f"read {path.name}"):
        acts.append(batch)
        seqs.append(sequence_ids[rows])
    if not acts or sum(len(a) for a in acts) == 0:
        raise typer.BadParameter(f"{path} holds no non-special tokens; rerun the cache stage")
    return torch.cat(acts), torch.cat(seqs)


def held_out_mask(sequence_ids: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Hold out whole sequences: tokens of one sequence share context, so a per-token
    split would let the SAE see near-copies of its evaluation tokens."""
    unique = torch.unique(sequence_ids)
    n_held = round(fraction * len(unique))
    if fraction > 0 and len(unique) > 1:
        n_held = min(max(n_held, 1), len(unique) - 1)
    else:
        n_held = 0
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed))
    return torch.isin(sequence_ids, unique[order[:n_held]])


def _cache_paths(cache_dir: Path, layer: int) -> tuple[list[Path], int]:
    paths = [cache_dir / f"{corpus}.parquet" for corpus in CORPORA]
    d_models = set()
    for path in paths:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist; run `sae-unlearn cache` first")
        meta = cache_metadata(path)
        if layer not in meta["layers"]:
            raise typer.BadParameter(
                f"{path} caches layers {meta['layers']}, not sae.layer={layer}; "
                "add it to cache.layers and rerun the cache stage"
            )
        d_models.add(int(meta["d_model"]))
    if len(d_models) != 1:
        raise typer.BadParameter(f"the caches in {cache_dir} disagree on d_model: {d_models}")
    return paths, d_models.pop()


def _warn_if_other_layer(sae, layer: int, origin: str) -> None:
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    if hook and f".{layer}." not in hook:
        warnings.warn(
            f"the SAE from {origin} was trained on {hook}, but sae.layer={layer}; "
            "set sae.layer to the SAE's layer (and cache it)",
            stacklevel=2,
        )


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
    sae_path = p.pick(path, "sae.path", None)
    src = SAESourceConfig(
        source=p.pick(source, "sae.source", "train"),
        release=p.pick(release, "sae.release", None),
        sae_id=p.pick(sae_id, "sae.sae_id", None),
        path=str(sae_path) if sae_path else None,
    )
    cache_path = Path(p.pick(cache_dir, "cache.dir"))
    sae_dir = Path(p.pick(out_dir, "sae.dir"))
    metrics_path = Path(p.pick(metrics, "sae.metrics", "metrics/sae.json"))
    dev = str(resolve_device(device))
    paths, d_model = _cache_paths(cache_path, sae_layer)
    seed = int(p.get("seed", 0))

    parts = [read_layer(path, sae_layer) for path in paths]
    info: dict = {"layer": sae_layer, "source": src.source}
    if src.source == "train":
        train_params = dict(p.get("sae.train", {}) or {})
        train_params.setdefault("seed", seed)
        if training_tokens is not None:
            train_params["training_tokens"] = training_tokens
        cfg = SAETrainConfig.from_dict(train_params)
        masks = [
            held_out_mask(seqs, cfg.held_out_fraction, cfg.seed + i)
            for i, (_, seqs) in enumerate(parts)
        ]
        train_acts = torch.cat([acts[~m] for (acts, _), m in zip(parts, masks, strict=True)])
        eval_acts = torch.cat([acts[m] for (acts, _), m in zip(parts, masks, strict=True)])
        if len(eval_acts) == 0:
            # held_out_fraction 0 (or a single sequence): report training-set numbers.
            eval_acts, split = train_acts, "train"
        else:
            split = "held_out"
        del parts
        start = time.perf_counter()
        sae = train_sae(
            train_acts,
            cfg,
            device=dev,
            metadata={
                "hook_name": f"blocks.{sae_layer}.hook_resid_post",
                "model_name": str(p.get("model.name", "")),
            },
        )
        info["train_seconds"] = round(time.perf_counter() - start, 1)
        info["n_train_tokens"] = len(train_acts)
        info["training_tokens"] = cfg.training_tokens
        origin = "training"
    else:
        origin = f"release {src.release} / {src.sae_id}" if src.source == "pretrained" else src.path
        sae = load_sae(src, device=dev)
        _warn_if_other_layer(sae, sae_layer, origin)
        eval_acts, split = torch.cat([acts for acts, _ in parts]), "all_cached"
        del parts
        info.update({"release": src.release, "sae_id": src.sae_id, "path": src.path})

    check_sae_matches_model(sae, d_model, origin)
    save_sae(sae, sae_dir)
    result = evaluate_sae(sae, eval_acts, progress=True)
    summary = {**result, "eval_split": split, **describe_sae(sae), **info}
    write_json(metrics_path, summary)
    typer.echo(
        f"SAE ({src.source}, {summary['architecture']}, d_sae={summary['d_sae']}) -> {sae_dir}: "
        f"explained variance {result['explained_variance']:.3f}, l0 {result['l0']:.1f}, "
        f"dead {result['dead_fraction']:.3f} on {result['n_tokens']} {split} tokens"
    )
