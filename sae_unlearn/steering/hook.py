"""The clamp hook: `h' = h + (f' - f) @ W_dec`, keeping the SAE error term.

With `add` rows it is the authors' `add` (their `InterventionModel`): `s = sum of c_j W_dec[j]`
is added to the SAE's input, the latents `f` are encoded from `x + s`, edited by the other
rows into `f'`, and the error term is taken on the clean input:
`h' = h + decode(f'; x + s) - decode(encode(x); x)`. The shift passes through the encoder
(and the JumpReLU thresholds), so it moves every latent: such a config encodes them all.
We match it rather than add `c_j W_dec[j]` to the residual, so that the authors' files mean
here what they meant there.

Every action leaves the BOS slot (the first real token of each row, position 0 of an
unpadded one) and pads alone: it never edits them, and they never meet a condition. BOS
is the attention sink: its residual is far off the SAE's distribution, latent statistics
leave it out as a special token, and a latent firing there would fire on every prompt, so a
conditional clamp reading it would act unconditionally. Other special tokens (EOS, turn
markers) are ordinary positions: the hook sees residuals, not token ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sae_unlearn.errors import UserError
from sae_unlearn.steering.gate import GateLayout, run_gate, where_of
from sae_unlearn.steering.latent_slice import LatentSlice
from sae_unlearn.steering.positions import (
    Prefix,
    SequenceState,
    Where,
    advance,
    plan,
    read_forward,
)
from sae_unlearn.steering.rows import ClampConfig, SteeringRow, validate_rows


class ClampHook(nn.Module):
    """Applies a ClampConfig to residual activations; differentiable (no `no_grad`).

    Every action but `clamp_gated` acts position by position. `clamp_gated` rows read the
    sequence up to each position (`gate_open`, of the config's gate kind); `sequence_level`
    tells callers. Called on a
    tensor `[batch, T, d]`, the hook takes whole sequences from position 0 (or `layout`);
    attached with `steer`, it learns each forward's positions from its inputs (`where`) and
    keeps the gate per row across the forwards of a cached generation (`state`).
    """

    def __init__(self, sae: nn.Module, cfg: ClampConfig):
        super().__init__()
        validate_rows(cfg.rows, d_sae=int(sae.cfg.d_sae))
        cfg.gate.check()
        self.cfg = cfg
        adds = any(r.hook_action == "add" for r in cfg.rows)
        d_sae = int(sae.cfg.d_sae)
        self.slice = LatentSlice(sae, range(d_sae) if adds else cfg.needed_latents())
        pos = self.slice.position

        def gather(action: str) -> list[SteeringRow]:
            return [r for r in cfg.rows if r.hook_action == action]

        def tensor(values, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype)

        add = gather("add")
        # The input shift of every add row, summed, in the SAE's dtype (their hooks add to the
        # SAE input after its cast); None without add rows.
        shift = None
        if add:
            coef = tensor([r.steering_coefficient for r in add]).to(self.slice.W_dec.dtype)
            shift = coef @ self.slice.W_dec[[pos[r.latent_idx] for r in add]]
        self.register_buffer("add_shift", shift)
        clamp = gather("clamp")
        self.register_buffer("clamp_pos", tensor([pos[r.latent_idx] for r in clamp], torch.long))
        self.register_buffer("clamp_val", tensor([r.steering_coefficient for r in clamp]))
        cond = gather("clamp_cond")
        self.register_buffer("cond_pos", tensor([pos[r.latent_idx] for r in cond], torch.long))
        self.register_buffer("cond_thr", tensor([r.clamp_value for r in cond]))
        self.register_buffer("cond_val", tensor([r.steering_coefficient for r in cond]))
        gated = gather("clamp_gated")
        self.register_buffer("gate_pos", tensor([pos[r.latent_idx] for r in gated], torch.long))
        self.register_buffer("gate_thr", tensor([r.clamp_value for r in gated]))
        self.register_buffer("gate_val", tensor([r.steering_coefficient for r in gated]))
        # A gate reads earlier positions: packed rows must declare their layout
        # (`gate_layout`), and cached decoding carries it over in `state`.
        self.sequence_level = bool(len(gated))
        self.layout: GateLayout | None = None  # set by `gate_layout`
        self.block: int | None = None  # the decoder block `steer` attached it to
        self.last_open: torch.Tensor | None = None  # gate at the last position, per row
        self.tail: Prefix | None = None  # what the last forward leaves one continuing it
        self.state: SequenceState | None = None  # the gate across a generation's forwards
        # (offset, gate or None, edited) of each forward, while a list (`generation` marks)
        self.trace: list[tuple[int | None, torch.Tensor | None, torch.Tensor]] | None = None
        # refusal groups: one per (refuse_id, value)
        self.refusal_groups: list[tuple[int, float, list[int], list[float]]] = []
        for refuse_id in sorted({r.refuse_id for r in gather("clamp_refusal")}):
            members = [r for r in gather("clamp_refusal") if r.refuse_id == refuse_id]
            values = {r.steering_coefficient for r in members}
            if len(values) != 1:
                raise UserError(
                    f"clamp_refusal rows for refuse_id {refuse_id} disagree on the value to set "
                    f"({sorted(values)}); give them one steering_coefficient"
                )
            self.refusal_groups.append(
                (
                    pos[refuse_id],
                    values.pop(),
                    [pos[r.latent_idx] for r in members],
                    [r.clamp_value for r in members],
                )
            )

    def plan(self, arguments: Mapping[str, Any]) -> Where | None:
        """The positions of a decoder forward called with `arguments` (None under a layout)."""
        if self.layout is not None:
            return None
        return plan(read_forward(arguments), self.state, self.sequence_level)

    def edit(self, f: torch.Tensor, where: Where | None = None) -> torch.Tensor:
        """The edited latents f' (same shape as f); conditions read the unedited f, and only
        at the positions `where.keep` allows (default: whole sequences, or `layout`)."""
        where = where if where is not None else where_of(f.shape[:-1], self.layout)
        keep = where.keep(f.device)[..., None]
        new = f.clone()
        dtype = f.dtype
        if len(self.clamp_pos):
            sel = f[..., self.clamp_pos]
            new[..., self.clamp_pos] = torch.where((sel > 0) & keep, self.clamp_val.to(dtype), sel)
        if len(self.cond_pos):
            sel = f[..., self.cond_pos]
            new[..., self.cond_pos] = torch.where(
                (sel > self.cond_thr.to(dtype)) & keep, self.cond_val.to(dtype), sel
            )
        gate = None
        if len(self.gate_pos):
            sel = f[..., self.gate_pos]
            fire = (sel > self.gate_thr.to(dtype)).any(dim=-1)
            if self.cfg.gate.kind != "latched" and where.carry is True and where.prefix is None:
                raise ValueError(
                    f"a {self.cfg.gate.kind} gate cannot continue a prefix from a bool carry; "
                    "pass GateLayout(carry=gate_carry(hooks)), the prefix's counts"
                )
            result = run_gate(fire, where, self.cfg.gate)
            gate = result.open
            self.last_open = gate[..., -1].detach() if gate.dim() else gate.detach()
            self.tail = result.tail
            if where.history is not None:
                self.state = advance(where, fire & keep[..., 0], keep[..., 0].expand(fire.shape))
            new[..., self.gate_pos] = torch.where(
                result.clamp[..., None] & (sel > 0) & keep, self.gate_val.to(dtype), sel
            )
        for target, value, members, thresholds in self.refusal_groups:
            thr = torch.tensor(thresholds, dtype=dtype, device=f.device)
            fire = (f[..., members] > thr).any(dim=-1) & keep[..., 0]
            new[..., target] = torch.where(
                fire, torch.full_like(new[..., target], value), new[..., target]
            )
        if self.trace is not None:
            edited = (new != f).any(dim=-1).detach()
            if self.add_shift is not None:  # the shift changes every position it may
                edited = edited | keep[..., 0].expand(edited.shape)
            self.trace.append((where.offset, None if gate is None else gate.detach(), edited))
        return new

    def forward(self, h: torch.Tensor, where: Where | None = None) -> torch.Tensor:
        x = h.to(self.slice.W_enc.dtype)
        if self.add_shift is None:
            sae_in, out_scale = self.slice.normalise(x)
            f = self.slice.encode(sae_in)
            delta = self.slice.decode_delta(self.edit(f, where) - f) * out_scale
            return h + delta.to(h.dtype)
        where = where if where is not None else where_of(h.shape[:-1], self.layout)
        keep = where.keep(h.device)[..., None]
        shifted = torch.where(keep, x + self.add_shift.to(x.dtype), x)
        f = self.slice.encode(self.slice.normalise(shifted)[0])
        clean = self.slice.encode(self.slice.normalise(x)[0])
        delta = self.slice.reconstruct(self.edit(f, where), shifted) - self.slice.reconstruct(
            clean, x
        )
        return h + delta.to(h.dtype)
