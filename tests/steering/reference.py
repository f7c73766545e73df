"""An oracle for the clamp hook written apart from it: sae-lens' own full encode/decode and
each steering action applied row by row, position by position, in plain Python."""

from __future__ import annotations

import torch
from torch import nn

from sae_unlearn.steering import ClampConfig


def _acted_on(mask: torch.Tensor | None, batch: int, length: int) -> list[list[bool]]:
    """Per row and position, whether an action may read or edit it: a real token (mask 1)
    that is not the row's first real token (BOS)."""
    out = []
    for b in range(batch):
        real = [mask is None or bool(mask[b, t]) for t in range(length)]
        first = real.index(True) if True in real else length
        out.append([real[t] and t != first for t in range(length)])
    return out


def reference_edit(
    f: torch.Tensor, cfg: ClampConfig, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Edited latents `[B, T, d_sae]`, in the order the hook documents: clamp, clamp_cond,
    add, clamp_gated, then clamp_refusal (which overrides its target). No action reads or
    edits BOS (each row's first real token) or a pad (`mask` 0)."""
    new = f.clone()
    batch, length, _ = f.shape
    acts = _acted_on(mask, batch, length)
    for row in cfg.rows:
        i = row.latent_idx
        for b in range(batch):
            for t in range(length):
                if not acts[b][t]:
                    continue
                value = float(f[b, t, i])
                if row.hook_action == "clamp" and value > 0:
                    new[b, t, i] = row.clamp_value
                elif row.hook_action == "clamp_cond" and value > row.clamp_value:
                    new[b, t, i] = row.steering_coefficient
                elif row.hook_action == "add":
                    new[b, t, i] = new[b, t, i] + row.steering_coefficient
    gated = [r for r in cfg.rows if r.hook_action == "clamp_gated"]
    for b in range(batch):
        opened = False
        for t in range(length):
            if not acts[b][t]:
                continue
            # Once a gated latent exceeds its threshold, the gate stays open.
            opened = opened or any(f[b, t, r.latent_idx] > r.clamp_value for r in gated)
            for r in gated:
                if opened and f[b, t, r.latent_idx] > 0:
                    new[b, t, r.latent_idx] = r.steering_coefficient
    refusal = [r for r in cfg.rows if r.hook_action == "clamp_refusal"]
    for b in range(batch):
        for t in range(length):
            for r in refusal:
                if acts[b][t] and f[b, t, r.latent_idx] > r.clamp_value:
                    new[b, t, r.refuse_id] = r.steering_coefficient
    return new


def reference_gate(f: torch.Tensor, cfg: ClampConfig) -> list[list[bool]]:
    """Per row and position of `f` `[B, T, d_sae]` (whole unpadded sequences), whether the
    gate of the config's `clamp_gated` rows is open."""
    gated = [r for r in cfg.rows if r.hook_action == "clamp_gated"]
    out = []
    for b in range(f.shape[0]):
        opened, row = False, []
        for t in range(f.shape[1]):
            opened = opened or (t > 0 and any(f[b, t, r.latent_idx] > r.clamp_value for r in gated))
            row.append(opened)
        out.append(row)
    return out


def reference_steer(sae: nn.Module, cfg: ClampConfig, h: torch.Tensor) -> torch.Tensor:
    """Full encode -> edit -> decode + error, with sae-lens' own encode/decode."""
    f = sae.encode(h)
    error = h - sae.decode(f)
    return sae.decode(reference_edit(f, cfg)) + error
