"""The cache an SAE is scored on fits it: the cached layer, the residual width and the layer
in the SAE's own hook name (each the one check of its kind, from activations and saes)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sae_unlearn.activations import check_layer_cached
from sae_unlearn.saes.io import check_sae_width, warn_if_other_layer


def check_cache_for_sae(path: str | Path, sae: nn.Module, layer: int) -> dict:
    """The cache's metadata, after checking it holds `layer` at the SAE's input width."""
    meta = check_layer_cached(path, layer, what="sae.layer")
    d_model = int(meta["d_model"])
    check_sae_width(
        sae,
        d_model,
        found=f"{path} holds {d_model}-dimensional ones (model {meta.get('model') or '?'})",
        advice="use an SAE for this model and layer (rerun `sae-unlearn train-sae`, or point "
        "sae.source/sae.path at a matching SAE)",
    )
    warn_if_other_layer(sae, layer)
    return meta
