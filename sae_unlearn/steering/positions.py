"""Where each position of a forward sits in its sequence, and a gate's state across forwards.

The clamp hook runs inside a decoder block, which sees neither the 2D attention mask nor
whether the forward extends a KV cache. A forward pre-hook on the decoder stack reads them
(`read_forward`), and `plan` turns them, with what the previous forward left
(`SequenceState`), into a `Where` for the hook:

- real tokens have attention mask 1; pads never open a gate and no action edits them;
- the first real token of each row is the BOS slot (position 0 of an unpadded row), which
  no action edits or reads, so a left-padded row computes what it computes alone;
- a forward starts new sequences when it extends no cache (`cache_position`, the cache's
  length or the `position_ids` start at 0); that resets the gate state;
- otherwise it continues the sequences the previous forward ended (cached decoding): the
  state keeps, per row and column, where a trigger fired and which columns count as
  positions, from which each gate kind reads what came before (`Prefix`).

Beam search, which reorders cache rows between steps, is not followed. What cannot be
told (a continuation with no state, of another batch or cache, or a 4D mask outside
`gate_layout`) raises instead of guessing.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

NEVER = torch.iinfo(torch.long).max  # the column of a gate that has not opened
NO_TRIGGER = torch.iinfo(torch.long).min // 2  # the position of a trigger yet to come


@dataclass
class Prefix:
    """What the positions before a forward leave a gate, per row (`[B]`, or 0-d): how many
    triggered it (`fires`), how many real non-BOS positions there were (`count`), and the
    position of the last trigger (`last`, NO_TRIGGER if none)."""

    fires: torch.Tensor
    count: torch.Tensor
    last: torch.Tensor

    @classmethod
    def empty(cls, shape: tuple[int, ...] = ()) -> Prefix:
        """No positions before."""
        zero = torch.zeros(shape, dtype=torch.long)
        return cls(zero, zero.clone(), torch.full(shape, NO_TRIGGER, dtype=torch.long))

    @classmethod
    def of(cls, fired: torch.Tensor, counted: torch.Tensor) -> Prefix:
        """The prefix of column histories `[B, L]`: `fired` (a trigger there) and `counted`
        (a real non-BOS column). A counted column's position is the number of counted
        columns up to it (BOS sits at 0 and pads before it), so left pads do not count."""
        position = counted.long().cumsum(-1)
        marked = torch.where(fired, position, torch.full_like(position, NO_TRIGGER))
        last = marked.amax(-1) if marked.shape[-1] else torch.full(marked.shape[:-1], NO_TRIGGER)
        return cls(fired.long().sum(-1), counted.long().sum(-1), last)


@dataclass
class Where:
    """Where the positions of one hook input `[..., T, d]` sit in their sequences.

    `start` `[..., T]`: the BOS slot, which no action edits or reads. `real` `[B, T]`:
    attention mask 1 (None: all real). `carry`: the latched gate was open before this
    forward (`[B]`, or one bool). `visible` `[T, T]`: which positions each one sees (None:
    causal). `positions` `[T]`: each one's index in its sequence, where a layout gives them
    (None: counted from the prefix). `prefix`: what the positions before left the other
    gates (None: nothing).
    For tracked sequences, `offset` is the column of the first position, `history` the
    columns before it (`fired`, `counted`, `[B, offset]`), and `cache` the KV cache extended.
    """

    start: torch.Tensor
    real: torch.Tensor | None = None
    carry: torch.Tensor | bool = False
    visible: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    offset: int | None = None
    prefix: Prefix | None = None
    history: tuple[torch.Tensor, torch.Tensor] | None = None
    cache: Any = None

    def keep(self, device) -> torch.Tensor:
        """Positions an action may edit or read: real tokens other than the BOS slot."""
        keep = ~self.start.to(device)
        return keep if self.real is None else keep & self.real.to(device)


@dataclass
class SequenceState:
    """What a gated hook keeps between the forwards of one generation: per row and column,
    whether a trigger fired there and whether it counts as a position (real, not BOS), so
    that a cache cropped back to fewer columns forgets what came after."""

    fired: torch.Tensor  # [B, length] bool
    counted: torch.Tensor  # [B, length] bool
    length: int  # columns seen so far
    cache: weakref.ref | None  # the KV cache those forwards extended
    cache_checked: bool = True  # False for cache types without weak references

    @property
    def opened(self) -> torch.Tensor:
        """`[B]` long: the column where each row's latched gate opened (NEVER: not yet)."""
        first = self.fired.long().argmax(-1)
        return torch.where(self.fired.any(-1), first, NEVER)


@dataclass
class ForwardInputs:
    """What a decoder forward says about its positions."""

    batch: int
    length: int
    past: int | None  # columns before this forward; None: it continues, offset unknown
    mask: torch.Tensor | None  # [B, past + length] bool (None: all real)
    cache: Any = None


_MASK_HELP = (
    "the steering hook reads padding from a 2D attention mask [batch, length] (or none), but "
    "this forward passed {kind}; pass the 2D mask (transformers builds the 4D one from it; "
    "generate does so with the default dynamic cache, not cache_implementation='static'), "
    "or declare how positions see each other with sae_unlearn.steering.gate_layout"
)


def read_forward(arguments: Mapping[str, Any]) -> ForwardInputs:
    """Batch, length, cached columns and padding of a decoder forward, from its arguments."""
    ref = arguments.get("input_ids")
    ref = arguments.get("inputs_embeds") if ref is None else ref
    if ref is None:
        raise ValueError("the steered forward has neither input_ids nor inputs_embeds")
    batch, length = int(ref.shape[0]), int(ref.shape[1])
    mask = arguments.get("attention_mask")
    if mask is not None and not (torch.is_tensor(mask) and mask.dim() == 2):
        kind = f"a {mask.dim()}D mask" if torch.is_tensor(mask) else f"a {type(mask).__name__}"
        raise ValueError(_MASK_HELP.format(kind=kind))
    mask = None if mask is None else mask.bool()
    cache = arguments.get("cache", arguments.get("past_key_values"))
    cache_position = arguments.get("cache_position")
    if cache_position is not None:
        past: int | None = int(cache_position.reshape(-1)[0])
    elif cache is not None and hasattr(cache, "get_seq_length"):
        past = int(cache.get_seq_length())
    elif mask is not None:
        past = int(mask.shape[1]) - length
    else:
        past = 0
    position_ids = arguments.get("position_ids")
    if past == 0 and position_ids is not None:
        past = _past_from_positions(position_ids, mask, batch, length)
    if mask is not None and past is not None and mask.shape[1] != past + length:
        raise ValueError(
            f"attention_mask has {mask.shape[1]} columns but the forward runs {length} "
            f"positions after {past} cached ones; pass the mask of the whole sequence"
        )
    return ForwardInputs(batch, length, past, mask, cache)


def _past_from_positions(position_ids, mask, batch: int, length: int) -> int | None:
    """0 when every row's first real token sits at position 0, None when none does."""
    pos = position_ids.reshape(-1, position_ids.shape[-1]).expand(batch, length)
    real = mask[:, -length:] if mask is not None else torch.ones_like(pos, dtype=torch.bool)
    first = torch.where(real, pos, torch.full_like(pos, NEVER)).amin(dim=-1)[real.any(-1)]
    if bool((first == 0).all()):
        return 0
    if bool((first > 0).all()):
        return None
    raise ValueError(
        f"position_ids start at 0 in some rows and not others ({first.tolist()}); a steered "
        "forward must start every sequence or continue every one"
    )


def plan(inputs: ForwardInputs, state: SequenceState | None, gated: bool) -> Where:
    """The `Where` of one forward; `state` is what a gated hook's previous forward left."""
    batch, length, past = inputs.batch, inputs.length, inputs.past
    if past is None:
        # positions past 0 and no cache: the BOS slot lies in an earlier forward
        start = torch.zeros((batch, length), dtype=torch.bool)
        real = None if inputs.mask is None else inputs.mask[:, -length:]
        if gated:
            _check_continues(inputs, state, None)
            past = state.length
    else:
        full = inputs.mask
        if full is None:
            first = torch.zeros(batch, dtype=torch.long)
        else:
            first = torch.where(full.any(-1), full.long().argmax(-1), NEVER)
        cols = torch.arange(past, past + length, device=first.device)
        start = cols[None, :] == first[:, None]
        real = None if full is None else full[:, past:]
    if not gated:
        return Where(start, real, offset=past)
    if past == 0:
        fired = torch.zeros((batch, 0), dtype=torch.bool)
        counted = torch.zeros((batch, 0), dtype=torch.bool)
    else:
        _check_continues(inputs, state, past)
        # A cache cropped back to `past` columns (assisted decoding) forgets what followed.
        fired, counted = state.fired[:, :past], state.counted[:, :past]
    prefix = Prefix.of(fired, counted)
    return Where(
        start,
        real,
        prefix.fires > 0,
        offset=past,
        prefix=prefix,
        history=(fired, counted),
        cache=inputs.cache,
    )


def _check_continues(inputs: ForwardInputs, state: SequenceState | None, past: int | None):
    where = f"after {past} cached positions" if past is not None else "at positions past 0"
    if state is None:
        raise ValueError(
            f"a gated clamp cannot tell whether its gate is open in a forward that starts "
            f"{where} with no earlier steered forward of the sequence; run the prompt under "
            "`steer` first (as generate does), or pass the whole sequence from position 0"
        )
    if state.fired.shape[0] != inputs.batch:
        raise ValueError(
            f"this forward continues {inputs.batch} sequences but the gated clamp's last "
            f"forward ran {state.fired.shape[0]}; continue the same batch, or start afresh"
        )
    if past is not None and past > state.length:
        raise ValueError(
            f"this forward starts {where} but the gated clamp saw only {state.length}; "
            "run every forward of the sequence under `steer`"
        )
    seen = state.cache() if state.cache is not None else None
    if inputs.cache is not None and state.cache_checked and seen is not inputs.cache:
        raise ValueError(
            "this forward extends a KV cache the gated clamp did not see filled; build the "
            "cache under `steer`, or declare the prefix with sae_unlearn.steering.gate_layout"
        )


def advance(where: Where, fired: torch.Tensor, counted: torch.Tensor) -> SequenceState:
    """The state after a forward whose triggers were `fired` `[B, T]` at its counted (real,
    non-BOS) positions `counted`."""
    before_fired, before_counted = where.history
    fired = torch.cat([before_fired.to(fired.device), fired.detach()], dim=-1)
    counted = torch.cat([before_counted.to(counted.device), counted.detach()], dim=-1)
    length = fired.shape[-1]
    if where.cache is None:  # a cache the model makes itself is not seen: no identity check
        return SequenceState(fired, counted, length, None, False)
    try:
        cache = weakref.ref(where.cache)
    except TypeError:  # e.g. legacy tuple caches, new each step
        return SequenceState(fired, counted, length, None, False)
    return SequenceState(fired, counted, length, cache)
