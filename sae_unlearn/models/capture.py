"""Recording the residual stream after chosen decoder blocks, optionally stopping early."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from sae_unlearn.models.layers import check_layer, decoder_layers, layer_output


class _StopForward(Exception):
    """Raised by a hook to skip the layers after the deepest one we need."""


@contextmanager
def capture_residuals(
    model: nn.Module, layers: list[int], stop_after_last: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Record the residual stream after each listed block on every forward.

    With `stop_after_last`, the forward is cut short after the deepest listed block
    (use `run_to_layers`), which skips the remaining blocks and the unembedding:
    caching only needs activations, and the 262k-token unembedding of Gemma 3 is
    more than half the cost of a full forward of the 270M model.
    """
    blocks = decoder_layers(model)
    for layer in layers:
        check_layer(model, layer, what="cache.layers entry")
    captured: dict[int, torch.Tensor] = {}
    last = max(layers)
    handles = []

    def make_hook(layer: int):
        def hook(_module, _inputs, output):
            captured[layer] = layer_output(output).detach()
            if stop_after_last and layer == last:
                raise _StopForward

        return hook

    try:
        for layer in sorted(set(layers)):
            handles.append(blocks[layer].register_forward_hook(make_hook(layer)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_to_layers(
    model: nn.Module, captured: dict[int, torch.Tensor], **inputs: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Forward under `capture_residuals(..., stop_after_last=True)`; returns the captures."""
    captured.clear()
    base = getattr(model, "model", model)
    try:
        base(**inputs, use_cache=False)
    except _StopForward:
        pass
    return dict(captured)
