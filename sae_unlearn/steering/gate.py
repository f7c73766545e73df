"""The gate of `clamp_gated` rows: where a precise detector has fired so far in a sequence.

A precise detector (high thresholds, calibrated so they rarely trip on the retain corpus)
gates a broad clamp (every firing), as conditional activation steering gates a behaviour
on a condition read from the prompt (Lee et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sae_unlearn.steering.positions import Where


@dataclass
class GateLayout:
    """How the positions of the next forwards see each other, for gated clamps on inputs that
    are not whole causal sequences: a row packing several sequences as a prefix tree, or the
    part after a prefix held in a KV cache.

    `visible[q, k]`: position q attends to position k of the same forward (default: causal).
    `positions`: each position's index in its own sequence; index 0 (BOS) is left alone by
    every action (default: 0..T-1). `carry`: the gate was already open at the end of the
    cached prefix, so it is open everywhere.
    """

    visible: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    carry: bool = False


def where_of(shape: torch.Size, layout: GateLayout | None = None) -> Where:
    """The `Where` of an input whose positions are `shape[-1]` (none for a 0-d shape): whole
    sequences from position 0, or as `layout` says."""
    layout = layout or GateLayout()
    if len(shape) == 0:  # one position with no history
        return Where(torch.zeros((), dtype=torch.bool), carry=layout.carry)
    if layout.positions is None:
        start = torch.arange(shape[-1]) == 0
    else:
        start = layout.positions == 0
    return Where(start, carry=layout.carry, visible=layout.visible)


def gate_from(fire: torch.Tensor, where: Where) -> torch.Tensor:
    """The gate `[..., T]` given where the detector fires `[..., T]`: open from the first
    firing position a position sees (never the BOS slot or a pad), or from before the
    forward where `where.carry`."""
    fire = fire & where.keep(fire.device)
    carry = where.carry
    if torch.is_tensor(carry):
        carry = carry.to(fire.device)[..., None] if fire.dim() else carry.to(fire.device)
    if fire.dim() == 0:
        return fire | carry
    if where.visible is None:
        gate = fire.cummax(dim=-1).values
    else:
        # Open where any visible position fired (its ancestors in a packed prefix tree).
        gate = (fire[..., None, :] & where.visible.to(fire.device)).any(dim=-1)
    return gate | carry


def gate_open(
    f: torch.Tensor, thresholds: torch.Tensor, layout: GateLayout | None = None
) -> torch.Tensor:
    """Where the gate of `clamp_gated` rows is open: `[..., T]` for latents `[..., T, k]`.

    The gate opens at the first position where any gated latent exceeds its threshold and
    stays open for the rest of the sequence (the positions after it can attend to it).
    Position 0 never opens it: there sits BOS, the attention sink, whose activations are
    off the SAE's distribution and which latent statistics leave out as a special token.
    A 1-d input is one position with no history.
    """
    fire = (f > thresholds).any(dim=-1)
    return gate_from(fire, where_of(fire.shape, layout))
