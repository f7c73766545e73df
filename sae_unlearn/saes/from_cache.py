"""The SAE for one cached layer, as the train-sae stage makes it: trained on the cached
activations or loaded from its source, with the cached tokens to evaluate it on."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from sae_unlearn.activations.read import read_layer_with_sequences
from sae_unlearn.models.layers import resid_hook_name
from sae_unlearn.saes.config import SAESourceConfig, SAETrainConfig
from sae_unlearn.saes.io import load_sae, warn_if_other_layer
from sae_unlearn.saes.quality import describe_sae, evaluate_sae, split_held_out
from sae_unlearn.saes.train import train_sae


@dataclass
class LayerSAE:
    """An SAE, the tokens to evaluate it on, and the facts recorded next to its metrics."""

    sae: SAE
    eval_activations: torch.Tensor
    eval_split: str  # held_out | train | all_cached
    info: dict[str, Any]
    seconds: float = 0.0  # training wall time: a timing, kept out of the metrics


def train_on_cache(
    cache_paths: Sequence[Path],
    layer: int,
    cfg: SAETrainConfig,
    model_name: str = "",
    device: str = "cpu",
) -> LayerSAE:
    """Train on the non-special cached tokens of `layer`, holding out whole sequences."""
    parts = [read_layer_with_sequences(path, layer) for path in cache_paths]
    train_acts, eval_acts, split = split_held_out(parts, cfg.held_out_fraction, cfg.seed)
    del parts  # the split copied every token; free the originals before training
    start = time.perf_counter()
    sae = train_sae(
        train_acts,
        cfg,
        device=device,
        metadata={"hook_name": resid_hook_name(layer), "model_name": model_name},
    )
    seconds = round(time.perf_counter() - start, 1)
    info = {
        "layer": layer,
        "source": "train",
        "trained_architecture": cfg.architecture,
        "n_train_tokens": len(train_acts),
        "training_tokens": cfg.training_tokens,
    }
    return LayerSAE(sae, eval_acts, split, info, seconds)


def load_for_cache(
    src: SAESourceConfig, cache_paths: Sequence[Path], layer: int, device: str = "cpu"
) -> LayerSAE:
    """Load the SAE named by `src`, to be evaluated on every cached token of `layer`."""
    parts = [read_layer_with_sequences(path, layer) for path in cache_paths]
    sae = load_sae(src, device=device)
    warn_if_other_layer(sae, layer, src.origin)
    eval_acts = torch.cat([acts for acts, _ in parts])
    del parts
    info = {
        "layer": layer,
        "source": src.source,
        "release": src.release,
        "sae_id": src.sae_id,
        "path": src.path,
    }
    return LayerSAE(sae, eval_acts, "all_cached", info)


def layer_sae_metrics(result: LayerSAE, progress: bool = True) -> dict[str, Any]:
    """Reconstruction and sparsity on the evaluation tokens, with the SAE's facts."""
    metrics = evaluate_sae(result.sae, result.eval_activations, progress=progress)
    return {**metrics, "eval_split": result.eval_split, **describe_sae(result.sae), **result.info}
