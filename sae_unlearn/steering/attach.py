"""Attaching clamp hooks to a transformers model, and telling callers what a gate needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from sae_unlearn.models import check_layer, decoder_layers
from sae_unlearn.steering.gate import GateLayout
from sae_unlearn.steering.hook import ClampHook

# Hooks attached with `steer`, kept on the model so forwards can ask what they need.
_ACTIVE_HOOKS = "_sae_unlearn_active_hooks"


@contextmanager
def steer(model: nn.Module, hook: ClampHook, layer: int | None = None) -> Iterator[ClampHook]:
    """Attach the clamp hook to the output of decoder block `layer` for the block's duration."""
    layer = hook.cfg.layer if layer is None else layer
    check_layer(model, layer, what="clamp layer")
    block = decoder_layers(model)[layer]
    device = next(model.parameters()).device
    hook.to(device)

    def forward_hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (hook(output[0]), *output[1:])
        return hook(output)

    handle = block.register_forward_hook(forward_hook)
    active = model.__dict__.setdefault(_ACTIVE_HOOKS, [])
    active.append(hook)
    try:
        yield hook
    finally:
        handle.remove()
        active.remove(hook)


def _gated_hooks(model: nn.Module) -> list[ClampHook]:
    return [h for h in model.__dict__.get(_ACTIVE_HOOKS, []) if h.sequence_level]


def needs_whole_sequences(model: nn.Module) -> bool:
    """Whether a hook attached with `steer` reads earlier positions (`clamp_gated` rows):
    then every forward must run whole right-padded sequences from position 0, or declare
    how its positions see each other with `gate_layout`."""
    return bool(_gated_hooks(model))


@contextmanager
def gate_layout(model: nn.Module, layout: GateLayout) -> Iterator[list[ClampHook]]:
    """Forwards inside see `layout` in every gated hook attached to `model`."""
    hooks = _gated_hooks(model)
    for hook in hooks:
        hook.layout, hook.last_open = layout, None
    try:
        yield hooks
    finally:
        for hook in hooks:
            hook.layout = None


def gate_opened(hooks: Sequence[ClampHook]) -> bool:
    """Whether any hook's gate was open at the last position of its last forward."""
    return any(h.last_open is not None and bool(h.last_open.any()) for h in hooks)
