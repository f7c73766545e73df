"""An oracle for the clamp hook written apart from it: sae-lens' own SAE forward with its
error term, wired as the authors' `InterventionModel` wires it (`add` rows shift the SAE
input at `hook_sae_input`; the other rows edit the latents at `hook_sae_acts_post`, applied
row by row, position by position, in plain Python).

The gates of `clamp_gated` rows, from each position's trigger (any gated latent above its
threshold) and its index among its row's real tokens (BOS is 0):
- latched: open from the first trigger on;
- window: open at index i while a trigger sits at some index j with i - W < j <= i;
- token_share: open at i when (triggers up to i) / (real non-BOS tokens up to i) > tau;
  it clamps only where a trigger sits.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sae_unlearn.steering import ClampConfig, Gate


def gate_row(triggers: list[bool], gate: Gate) -> tuple[list[bool], list[bool]]:
    """(open, clamp) per position of one sequence's real non-BOS tokens, given whether each
    is a trigger; the k-th of them (from 0) sits at index k + 1, after BOS."""
    opened, fires, last = False, 0, None
    open_, clamp = [], []
    for k, trigger in enumerate(triggers):
        index, count = k + 1, k + 1
        if trigger:
            fires, last = fires + 1, index
        if gate.kind == "latched":
            opened = opened or trigger
            is_open = opened
        elif gate.kind == "window":
            is_open = last is not None and index - gate.window < last <= index
        else:
            is_open = fires / count > gate.tau
        open_.append(is_open)
        clamp.append(is_open and (trigger or gate.kind != "token_share"))
    return open_, clamp


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
    clamp_gated, then clamp_refusal (which overrides its target); `add` edits no latent (see
    `reference_steer`). No action reads or edits BOS (each row's first real token) or a pad
    (`mask` 0)."""
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
                    new[b, t, i] = row.steering_coefficient
                elif row.hook_action == "clamp_cond" and value > row.clamp_value:
                    new[b, t, i] = row.steering_coefficient
    gated = [r for r in cfg.rows if r.hook_action == "clamp_gated"]
    for b in range(batch):
        cols = [t for t in range(length) if acts[b][t]]
        triggers = [any(f[b, t, r.latent_idx] > r.clamp_value for r in gated) for t in cols]
        _, clamp = gate_row(triggers, cfg.gate)
        for t, here in zip(cols, clamp, strict=True):
            for r in gated:
                if here and f[b, t, r.latent_idx] > 0:
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
        triggers = [
            any(f[b, t, r.latent_idx] > r.clamp_value for r in gated) for t in range(1, f.shape[1])
        ]
        open_, _ = gate_row(triggers, cfg.gate)
        out.append([False, *open_])
    return out


def reference_steer(
    sae: nn.Module, cfg: ClampConfig, h: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """sae-lens' SAE forward with `use_error_term` (the error from the clean input, hooks
    off), `add` rows adding `steering_coefficient * W_dec[i]` to its input and the edit
    applied to its latents, except at BOS and pads."""
    acted = torch.tensor(_acted_on(mask, h.shape[0], h.shape[1]), dtype=h.dtype)[..., None]

    def shift(x, hook):
        for row in cfg.rows:
            if row.hook_action == "add":
                x = x + acted * (row.steering_coefficient * sae.W_dec[row.latent_idx])
        return x

    def edit(f, hook):
        return reference_edit(f, cfg, mask)

    sae.hook_sae_input.add_hook(shift)
    sae.hook_sae_acts_post.add_hook(edit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sae-lens deprecates setting this on the SAE
        sae.use_error_term = True
    try:
        return sae(h)
    finally:
        sae.reset_hooks()
        sae.use_error_term = False
