"""Attaching clamp hooks to a transformers model, and telling callers what a gate needs."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from sae_unlearn.models import check_layer, decoder_layers, decoder_stack
from sae_unlearn.steering.gate import GateLayout
from sae_unlearn.steering.hook import ClampHook
from sae_unlearn.steering.positions import Prefix

# Hooks attached with `steer`, kept on the model so forwards can ask what they need.
_ACTIVE_HOOKS = "_sae_unlearn_active_hooks"


@contextmanager
def steer(model: nn.Module, hook: ClampHook, layer: int | None = None) -> Iterator[ClampHook]:
    """Attach the clamp hook to the output of decoder block `layer` for the block's duration.

    A pre-hook on the decoder stack reads each forward's attention mask, positions and KV
    cache (the blocks see only the 4D mask), so the hook follows whole sequences,
    left-padded batches and cached decoding (`generate(use_cache=True)`) alike.
    """
    layer = hook.cfg.layer if layer is None else layer
    check_layer(model, layer, what="clamp layer")
    block = decoder_layers(model)[layer]
    stack = decoder_stack(model)
    names = list(inspect.signature(stack.forward).parameters)
    device = next(model.parameters()).device
    hook.to(device)
    hook.state = None
    current: dict = {}

    def read_inputs(_module, args, kwargs):
        arguments = dict(zip(names, args, strict=False))
        arguments.update(kwargs)
        current["where"] = hook.plan(arguments)

    def forward_hook(_module, _inputs, output):
        # `get`, not `pop`: activation checkpointing reruns the block with the same inputs
        where = current.get("where")
        if isinstance(output, tuple):
            return (hook(output[0], where), *output[1:])
        return hook(output, where)

    handles = [
        stack.register_forward_pre_hook(read_inputs, with_kwargs=True),
        block.register_forward_hook(forward_hook),
    ]
    active = model.__dict__.setdefault(_ACTIVE_HOOKS, [])
    active.append(hook)
    hook.block = layer
    try:
        yield hook
    finally:
        for handle in handles:
            handle.remove()
        active.remove(hook)
        hook.state = None
        hook.block = None


def _gated_hooks(model: nn.Module) -> list[ClampHook]:
    return [h for h in model.__dict__.get(_ACTIVE_HOOKS, []) if h.sequence_level]


def needs_whole_sequences(model: nn.Module) -> bool:
    """Whether a hook attached with `steer` reads earlier positions (`clamp_gated` rows).
    It follows whole sequences, left-padded batches and cached decoding by itself; inputs
    that are none of these (packed rows, a cached prefix shared by other rows) must declare
    how their positions see each other with `gate_layout`."""
    return bool(_gated_hooks(model))


def attached_hooks(model: nn.Module) -> list[ClampHook]:
    """The hooks attached to `model` with `steer`, in the order they were attached."""
    return list(model.__dict__.get(_ACTIVE_HOOKS, []))


@contextmanager
def gate_layout(model: nn.Module, layout: GateLayout) -> Iterator[list[ClampHook]]:
    """Forwards inside see `layout` in every hook attached to `model` (each leaves the
    layout's position 0 alone; gated ones also read `visible` and `carry`)."""
    hooks = attached_hooks(model)
    for hook in hooks:
        hook.layout, hook.last_open, hook.state, hook.tail = layout, None, None, None
    try:
        yield hooks
    finally:
        for hook in hooks:
            hook.layout = None


def gate_opened(hooks: Sequence[ClampHook]) -> bool:
    """Whether any hook's gate was open at the last position of its last forward."""
    return any(h.last_open is not None and bool(h.last_open.any()) for h in hooks)


def gate_carry(hooks: Sequence[ClampHook]) -> bool | Prefix:
    """What the last forward of `hooks` (one sequence: a shared prefix) leaves the forwards
    that continue it, as `GateLayout.carry`: whether the latched gate is open, or the counts
    a window or token-share gate reads (one gated hook at a time then: each counts its own)."""
    gated = [h for h in hooks if h.sequence_level]
    if all(h.cfg.gate.kind == "latched" for h in gated):
        return gate_opened(hooks)
    if len(gated) > 1:
        raise ValueError(
            f"a shared prefix carries one gate's counts, but {len(gated)} gated hooks with a "
            "window or token_share gate are attached; attach one at a time"
        )
    return False if gated[0].tail is None else gated[0].tail
