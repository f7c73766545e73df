"""The clamp hook: `h' = h + (f' - f) @ W_dec`, keeping the SAE error term."""

from __future__ import annotations

import torch
from torch import nn

from sae_unlearn.steering.gate import GateLayout, gate_open
from sae_unlearn.steering.latent_slice import LatentSlice
from sae_unlearn.steering.rows import ClampConfig, SteeringRow, validate_rows


class ClampHook(nn.Module):
    """Applies a ClampConfig to residual activations; differentiable (no `no_grad`).

    Every action but `clamp_gated` acts position by position. `clamp_gated` rows read the
    sequence up to each position (`gate_open`), so inputs must be whole sequences
    `[batch, T, d]` starting at position 0, right-padded; `sequence_level` tells callers.
    """

    def __init__(self, sae: nn.Module, cfg: ClampConfig):
        super().__init__()
        validate_rows(cfg.rows, d_sae=int(sae.cfg.d_sae))
        self.cfg = cfg
        self.slice = LatentSlice(sae, cfg.needed_latents())
        pos = self.slice.position

        def gather(action: str) -> list[SteeringRow]:
            return [r for r in cfg.rows if r.hook_action == action]

        def tensor(values, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype)

        add = gather("add")
        self.register_buffer("add_pos", tensor([pos[r.latent_idx] for r in add], torch.long))
        self.register_buffer("add_val", tensor([r.steering_coefficient for r in add]))
        clamp = gather("clamp")
        self.register_buffer("clamp_pos", tensor([pos[r.latent_idx] for r in clamp], torch.long))
        self.register_buffer("clamp_val", tensor([r.clamp_value for r in clamp]))
        cond = gather("clamp_cond")
        self.register_buffer("cond_pos", tensor([pos[r.latent_idx] for r in cond], torch.long))
        self.register_buffer("cond_thr", tensor([r.clamp_value for r in cond]))
        self.register_buffer("cond_val", tensor([r.steering_coefficient for r in cond]))
        gated = gather("clamp_gated")
        self.register_buffer("gate_pos", tensor([pos[r.latent_idx] for r in gated], torch.long))
        self.register_buffer("gate_thr", tensor([r.clamp_value for r in gated]))
        self.register_buffer("gate_val", tensor([r.steering_coefficient for r in gated]))
        # A gate reads earlier positions, so callers must run whole sequences (no KV
        # cache, no packed rows); see `sequence_level`.
        self.sequence_level = bool(len(gated))
        self.layout: GateLayout | None = None  # set by `gate_layout`
        self.last_open: torch.Tensor | None = None  # gate at the last position, per row
        # refusal groups: one per (refuse_id, value)
        self.refusal_groups: list[tuple[int, float, list[int], list[float]]] = []
        for refuse_id in sorted({r.refuse_id for r in gather("clamp_refusal")}):
            members = [r for r in gather("clamp_refusal") if r.refuse_id == refuse_id]
            values = {r.steering_coefficient for r in members}
            if len(values) != 1:
                raise ValueError(
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

    def edit(self, f: torch.Tensor) -> torch.Tensor:
        """The edited latents f' (same shape as f); conditions read the unedited f."""
        new = f.clone()
        dtype = f.dtype
        if len(self.clamp_pos):
            sel = f[..., self.clamp_pos]
            new[..., self.clamp_pos] = torch.where(sel > 0, self.clamp_val.to(dtype), sel)
        if len(self.cond_pos):
            sel = f[..., self.cond_pos]
            new[..., self.cond_pos] = torch.where(
                sel > self.cond_thr.to(dtype), self.cond_val.to(dtype), sel
            )
        if len(self.add_pos):
            new[..., self.add_pos] = new[..., self.add_pos] + self.add_val.to(dtype)
        if len(self.gate_pos):
            sel = f[..., self.gate_pos]
            gate = gate_open(sel, self.gate_thr.to(dtype), self.layout)
            self.last_open = gate[..., -1].detach() if gate.dim() else gate.detach()
            new[..., self.gate_pos] = torch.where(
                gate[..., None] & (sel > 0), self.gate_val.to(dtype), sel
            )
        for target, value, members, thresholds in self.refusal_groups:
            thr = torch.tensor(thresholds, dtype=dtype, device=f.device)
            fire = (f[..., members] > thr).any(dim=-1)
            new[..., target] = torch.where(
                fire, torch.full_like(new[..., target], value), new[..., target]
            )
        return new

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h.to(self.slice.W_enc.dtype)
        sae_in, out_scale = self.slice.normalise(x)
        f = self.slice.encode(sae_in)
        delta = ((self.edit(f) - f) @ self.slice.W_dec) * out_scale
        return h + delta.to(h.dtype)
