"""tau for the token-share gate (Dynamic SAE Guardrails, `get_top_features_percentile`).

A token is a trigger (A = 1) when any gated latent exceeds its threshold there, as the
clamp hook reads it; special tokens are left out. Each corpus's tokens, its cached
sequences concatenated in order, are cut into consecutive chunks of `chunk` tokens; a
chunk's share is the mean of A over it, and tau is the `quantile` of the chunk shares
pooled over the calibration corpora: the gate then opens on about 1 - quantile of
benign chunk-sized texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sae_unlearn.activations import iter_activations, read_tokens
from sae_unlearn.errors import UserError
from sae_unlearn.selection.checks import check_cache_for_sae
from sae_unlearn.steering.latent_slice import LatentSlice


@torch.no_grad()
def token_triggers(
    sae: nn.Module,
    path: str | Path,
    layer: int,
    latents: Sequence[int],
    thresholds: Sequence[float],
    batch_size: int = 4096,
) -> np.ndarray:
    """Per non-special token of the cache at `path`, in (sequence, position) order, whether
    any of `latents` exceeds its threshold. Only those latents are encoded (all of them
    for a TopK SAE, whose k-th largest decides), as the steering hook encodes them."""
    check_cache_for_sae(path, sae, layer)
    part = LatentSlice(sae, latents)
    param = next(sae.parameters())
    part.to(param.device)
    # The slice holds the latents sorted; thresholds follow them there.
    thr = torch.empty(len(part.index), dtype=param.dtype, device=param.device)
    for latent, threshold in zip(latents, thresholds, strict=True):
        thr[part.position[int(latent)]] = float(threshold)
    tokens = read_tokens(path)
    fired = np.zeros(tokens.num_rows, dtype=bool)
    for acts, rows in iter_activations(path, layer):
        for start in range(0, len(acts), batch_size):
            x = acts[start : start + batch_size].to(device=param.device, dtype=param.dtype)
            sae_in, _ = part.normalise(x)
            fire = (part.encode(sae_in) > thr).any(dim=-1)
            fired[rows[start : start + batch_size].numpy()] = fire.cpu().numpy()
    special = tokens.column("is_special").to_numpy(zero_copy_only=False)
    order = np.lexsort(
        (tokens.column("position").to_numpy(), tokens.column("sequence_id").to_numpy())
    )
    return fired[order[~special[order]]]


def chunk_shares(triggers: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The mean of `triggers` over each run of `chunk` consecutive tokens; a last partial
    chunk counts if it holds at least half a chunk, or if it is the only one."""
    if chunk < 1:
        raise UserError(f"chunk={chunk}: a chunk needs at least 1 token")
    values = np.asarray(triggers, dtype=np.float64)
    full = len(values) // chunk
    shares = list(values[: full * chunk].reshape(full, chunk).mean(axis=1))
    rest = values[full * chunk :]
    if len(rest) and (2 * len(rest) >= chunk or full == 0):
        shares.append(float(rest.mean()))
    return np.asarray(shares, dtype=np.float64)


def calibrate_tau(
    sae: nn.Module,
    paths: Sequence[str | Path],
    layer: int,
    latents: Sequence[int],
    thresholds: Sequence[float],
    chunk: int = 1024,
    quantile: float = 0.95,
) -> float:
    """tau of the token-share gate: the `quantile` (linear interpolation) of the trigger
    shares of `chunk`-token chunks of the caches at `paths`, pooled."""
    if not 0.0 <= quantile <= 1.0:
        raise UserError(f"quantile={quantile}: use a number in [0, 1]")
    shares = [
        chunk_shares(token_triggers(sae, path, layer, latents, thresholds), chunk) for path in paths
    ]
    pooled = np.concatenate(shares) if shares else np.zeros(0)
    if not len(pooled):
        raise UserError(
            f"no tokens to calibrate tau on in {[str(p) for p in paths]}; rerun the cache stage"
        )
    return float(np.quantile(pooled, quantile))
