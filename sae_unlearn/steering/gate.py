"""The gate of `clamp_gated` rows: where a precise detector has fired in a sequence.

A precise detector (high thresholds, calibrated so they rarely trip on the retain corpus)
gates a broad clamp (every firing), as conditional activation steering gates a behaviour
on a condition read from the prompt (Lee et al. 2024). A trigger is a position (never BOS
or a pad) where any gated latent exceeds its threshold. Three gate kinds (`rows.Gate`):

- `latched`: open from the first trigger to the end of the sequence;
- `window`: open at t while a trigger s lies within the last W tokens (t - W < s <= t);
- `token_share` (Dynamic SAE Guardrails, Muhamed et al. 2025): open at t when the share
  of triggers among the real non-BOS positions up to t exceeds tau; it clamps only at
  trigger positions. DSG recomputes the share per forward, which under cached decoding
  makes it 0 or 1; here the counts run on across forwards (`Prefix`, `SequenceState`).

In a packed layout a position sees only its visible ancestors: the window measures
distance in `positions`, and the share counts visible positions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sae_unlearn.steering.positions import NO_TRIGGER, Prefix, Where
from sae_unlearn.steering.rows import Gate


@dataclass
class GateLayout:
    """How the positions of the next forwards see each other, for gated clamps on inputs that
    are not whole causal sequences: a row packing several sequences as a prefix tree, or the
    part after a prefix held in a KV cache.

    `visible[q, k]`: position q attends to position k of the same forward (default: causal).
    `positions`: each position's index in its own sequence; index 0 (BOS) is left alone by
    every action (default: 0..T-1). `carry`: what the cached prefix left the gate: a bool
    for the latched gate (open everywhere), or the `Prefix` a forward over it left
    (`attach.gate_carry`), which every gate kind reads.
    """

    visible: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    carry: bool | Prefix = False


@dataclass
class GateResult:
    """One forward's gate: `open` `[..., T]`, where to clamp firing gated latents (`clamp`),
    and what it leaves a forward that continues it (`tail`, None for the latched gate)."""

    open: torch.Tensor
    clamp: torch.Tensor
    tail: Prefix | None = None


def where_of(shape: torch.Size, layout: GateLayout | None = None) -> Where:
    """The `Where` of an input whose positions are `shape[-1]` (none for a 0-d shape): whole
    sequences from position 0, or as `layout` says."""
    layout = layout or GateLayout()
    prefix = layout.carry if isinstance(layout.carry, Prefix) else None
    carry = layout.carry if prefix is None else prefix.fires > 0
    if len(shape) == 0:  # one position with no history
        return Where(torch.zeros((), dtype=torch.bool), carry=carry, prefix=prefix)
    if layout.positions is None:
        start = torch.arange(shape[-1]) == 0
    else:
        start = layout.positions == 0
    return Where(
        start, carry=carry, visible=layout.visible, positions=layout.positions, prefix=prefix
    )


def gate_from(fire: torch.Tensor, where: Where) -> torch.Tensor:
    """The latched gate `[..., T]` given where the detector fires `[..., T]`: open from the
    first firing position a position sees (never the BOS slot or a pad), or from before the
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


def _running_sum(x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Per position, the sum of `x` `[..., T]` over the positions it sees (itself included)."""
    if visible is None:
        return x.cumsum(-1)
    return (x[..., None, :] * visible.to(x.device).long()).sum(-1)


def _running_max(x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Per position, the maximum of `x` `[..., T]` over the positions it sees."""
    if visible is None:
        return x.cummax(-1).values
    seen = torch.where(
        visible.to(x.device), x[..., None, :], torch.full_like(x[..., None, :], NO_TRIGGER)
    )
    return seen.amax(-1)


def _counted_gate(fire: torch.Tensor, where: Where, gate: Gate) -> GateResult:
    """The window and token-share gates for `fire` `[..., T]` (T >= 1)."""
    device = fire.device
    keep = where.keep(device).expand(fire.shape)
    fire = fire & keep
    prefix = where.prefix or Prefix.empty()
    fires0, count0, last0 = (
        x.to(device)[..., None] for x in (prefix.fires, prefix.count, prefix.last)
    )
    n_fire = fires0 + _running_sum(fire.long(), where.visible)
    n_pos = count0 + _running_sum(keep.long(), where.visible)
    if where.positions is not None:
        position = where.positions.to(device).long().expand(fire.shape)
    else:
        # A counted position's index in its row: the counted positions up to it (BOS is 0).
        position = n_pos
    marked = torch.where(fire, position, torch.full_like(position, NO_TRIGGER))
    last = torch.maximum(last0, _running_max(marked, where.visible))
    tail = Prefix(n_fire[..., -1], n_pos[..., -1], last[..., -1])
    if gate.kind == "window":
        open_ = (last > position - int(gate.window)) & keep
        return GateResult(open_, open_, tail)
    # float64 division of integer counts: the same rounding as Python's `a / b`.
    rho = n_fire.double() / n_pos.clamp(min=1).double()
    open_ = (n_pos > 0) & (rho > float(gate.tau)) & keep
    return GateResult(open_, open_ & fire, tail)


def run_gate(fire: torch.Tensor, where: Where, gate: Gate) -> GateResult:
    """The gate of kind `gate.kind` given the detector's firing `[..., T]` (or 0-d: one
    position with no history) at the positions `where` describes."""
    if gate.kind == "latched":
        open_ = gate_from(fire, where)
        return GateResult(open_, open_)
    if fire.dim() == 0:
        one = Where(where.start.reshape(1), carry=where.carry, prefix=where.prefix)
        out = _counted_gate(fire.reshape(1), one, gate)
        tail = Prefix(*(x.reshape(()) for x in (out.tail.fires, out.tail.count, out.tail.last)))
        return GateResult(out.open.reshape(()), out.clamp.reshape(()), tail)
    return _counted_gate(fire, where, gate)


def gate_open(
    f: torch.Tensor,
    thresholds: torch.Tensor,
    layout: GateLayout | None = None,
    gate: Gate | None = None,
) -> torch.Tensor:
    """Where the gate of `clamp_gated` rows is open: `[..., T]` for latents `[..., T, k]`.

    The latched gate (default) opens at the first position where any gated latent exceeds
    its threshold and stays open for the rest of the sequence (the positions after it can
    attend to it); `gate` may be another kind. Position 0 never opens it: there sits BOS,
    the attention sink, whose activations are off the SAE's distribution and which latent
    statistics leave out as a special token. A 1-d input is one position with no history.
    """
    fire = (f > thresholds).any(dim=-1)
    return run_gate(fire, where_of(fire.shape, layout), gate or Gate()).open
