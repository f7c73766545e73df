"""Decoder blocks of a transformers model, and the hook layer's range check.

The hook point is the residual stream after decoder block L, i.e. the output of
`model.model.layers[L]` (Gemma Scope's `blocks.L.hook_resid_post`).
"""

from __future__ import annotations

import torch
from torch import nn

from sae_unlearn.errors import UserError


def decoder_stack(model: nn.Module) -> nn.Module:
    """The module that runs the decoder blocks (`model.model`, or its `language_model`):
    its forward receives the 2D attention mask, positions and KV cache."""
    base = getattr(model, "model", model)
    for candidate in (base, getattr(base, "language_model", None)):
        if isinstance(getattr(candidate, "layers", None), nn.ModuleList):
            return candidate
    raise UserError(
        f"{type(model).__name__} has no `model.layers`; sae-unlearn supports transformers "
        "decoder models laid out like Gemma/Llama (model.model.layers[i])"
    )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a transformers decoder-only model."""
    return decoder_stack(model).layers


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def hidden_size(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    return int(text_config.hidden_size)


def check_layer(model: nn.Module, layer: int, what: str = "sae.layer") -> None:
    """Fail unless the model has decoder block `layer`; `what` names the setting to fix."""
    n = num_layers(model)
    if not 0 <= layer < n:
        raise UserError(
            f"{what}={layer} but the model has {n} decoder layers (valid: 0..{n - 1}); "
            f"set {what} to a layer the model has"
        )


def layer_output(output: torch.Tensor | tuple) -> torch.Tensor:
    """Decoder blocks return a tensor in recent transformers and a tuple in older ones."""
    return output[0] if isinstance(output, tuple) else output


def resid_hook_name(layer: int) -> str:
    """The sae-lens / Gemma Scope name of the residual stream after block `layer`."""
    return f"blocks.{layer}.hook_resid_post"
