"""Checks that an SAE fits what it reads: the cached layer (the activations package's check),
the residual width, the layer in the SAE's own hook name."""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from sae_unlearn.activations import check_layer_cached


def check_sae_width(sae: nn.Module, d_model: int, found: str, advice: str) -> None:
    """Fail when the SAE's input width is not `d_model`; `found` says where that width is
    from (e.g. "the model's hidden size is 640") and `advice` what to do about it."""
    d_in = int(sae.cfg.d_in)
    if d_in != d_model:
        raise ValueError(f"the SAE reads {d_in}-dimensional activations but {found}; {advice}")


def warn_if_other_layer(sae: nn.Module, layer: int, stacklevel: int = 2) -> None:
    """Warn when the SAE's own hook name says it was trained on another layer; `stacklevel`
    as `warnings.warn`'s, counted from the caller."""
    hook = getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
    if hook and f".{layer}." not in hook:
        warnings.warn(
            f"the SAE was trained on {hook}, but sae.layer={layer}; its statistics on this "
            "layer are unlikely to mean anything (set sae.layer to the SAE's layer)",
            stacklevel=stacklevel + 1,
        )


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
