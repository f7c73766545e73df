"""The SAE for one cached layer, as the train-sae stage makes it: trained on the cached
activations or loaded from its source, with the cached tokens to evaluate it on."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from sae_unlearn.activations.read import cache_metadata, read_layer_with_sequences
from sae_unlearn.models.layers import resid_hook_name
from sae_unlearn.saes.config import SAESourceConfig, SAETrainConfig
from sae_unlearn.saes.io import load_sae, warn_if_other_layer
from sae_unlearn.saes.quality import (
    Batches,
    describe_sae,
    evaluate_batches,
    split_held_out,
    tensor_batches,
)
from sae_unlearn.saes.stream import (
    CacheStream,
    CorpusSplit,
    split_sequences,
    train_sae_streamed,
)
from sae_unlearn.saes.train import train_sae


@dataclass
class LayerSAE:
    """An SAE, the tokens to evaluate it on, and the facts recorded next to its metrics."""

    sae: SAE
    eval_batches: Batches  # in memory or streamed from the cache
    eval_split: str  # held_out | train | all_cached
    info: dict[str, Any]
    seconds: float = 0.0  # training wall time: a timing, kept out of the metrics


def cached_tokens(cache_paths: Sequence[Path]) -> int:
    """Tokens in the caches (special ones included), from their manifests alone."""
    return sum(int(cache_metadata(path)["n_rows"]) for path in cache_paths)


def train_on_cache(
    cache_paths: Sequence[Path],
    layer: int,
    cfg: SAETrainConfig,
    model_name: str = "",
    device: str = "cpu",
) -> LayerSAE:
    """Train on the non-special cached tokens of `layer`, holding out whole sequences: in
    memory when the caches hold at most `cfg.memory_tokens` tokens, else streamed."""
    metadata = {"hook_name": resid_hook_name(layer), "model_name": model_name}
    info: dict[str, Any] = {
        "layer": layer,
        "source": "train",
        "trained_architecture": cfg.architecture,
    }
    if cached_tokens(cache_paths) > cfg.memory_tokens:
        splits = split_sequences(cache_paths, cfg.held_out_fraction, cfg.seed)
        stream = CacheStream(splits, layer)
        start = time.perf_counter()
        sae, n_train = train_sae_streamed(stream, cfg, device=device, metadata=metadata)
        eval_batches = functools.partial(stream.in_order, held_out=True)
        split = "held_out" if stream.has_held_out else "train"
        info["streamed_memory_tokens"] = cfg.memory_tokens
    else:
        parts = [read_layer_with_sequences(path, layer) for path in cache_paths]
        train_acts, eval_acts, split = split_held_out(parts, cfg.held_out_fraction, cfg.seed)
        del parts  # the split copied every token; free the originals before training
        start = time.perf_counter()
        sae = train_sae(train_acts, cfg, device=device, metadata=metadata)
        n_train, eval_batches = len(train_acts), tensor_batches(eval_acts)
    seconds = round(time.perf_counter() - start, 1)
    info.update(n_train_tokens=n_train, training_tokens=cfg.training_tokens)
    return LayerSAE(sae, eval_batches, split, info, seconds)


def load_for_cache(
    src: SAESourceConfig, cache_paths: Sequence[Path], layer: int, device: str = "cpu"
) -> LayerSAE:
    """Load the SAE named by `src`, to be evaluated on every cached token of `layer`
    (streamed from the cache, whatever its size)."""
    sae = load_sae(src, device=device)
    warn_if_other_layer(sae, layer, src.origin)
    nothing_held_out = torch.empty(0, dtype=torch.int32)
    stream = CacheStream([CorpusSplit(Path(p), nothing_held_out) for p in cache_paths], layer)
    info = {
        "layer": layer,
        "source": src.source,
        "release": src.release,
        "sae_id": src.sae_id,
        "path": src.path,
    }
    return LayerSAE(sae, stream.in_order, "all_cached", info)


def layer_sae_metrics(result: LayerSAE, progress: bool = True) -> dict[str, Any]:
    """Reconstruction and sparsity on the evaluation tokens, with the SAE's facts."""
    metrics = evaluate_batches(result.sae, result.eval_batches, progress=progress)
    return {**metrics, "eval_split": result.eval_split, **describe_sae(result.sae), **result.info}
