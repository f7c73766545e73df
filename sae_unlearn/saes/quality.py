"""How good an SAE is: reconstruction and sparsity on held-out cached activations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from sae_lens import SAE
from tqdm.auto import tqdm

# A source of `[n, d_in]` token batches that can be read more than once.
Batches = Callable[[], Iterable[torch.Tensor]]


def held_out_sequences(unique_ids: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """The held-out share of the sorted distinct sequence ids `unique_ids`: whole sequences,
    since tokens of one sequence share context, so a per-token split would let the SAE see
    near-copies of its evaluation tokens. At least one and not all when `fraction` > 0."""
    n_held = round(fraction * len(unique_ids))
    if fraction > 0 and len(unique_ids) > 1:
        n_held = min(max(n_held, 1), len(unique_ids) - 1)
    else:
        n_held = 0
    order = torch.randperm(len(unique_ids), generator=torch.Generator().manual_seed(seed))
    return unique_ids[order[:n_held]]


def held_out_mask(sequence_ids: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Which tokens (by their sequence ids) belong to the held-out sequences."""
    held = held_out_sequences(torch.unique(sequence_ids), fraction, seed)
    return torch.isin(sequence_ids, held)


def split_held_out(
    parts: Sequence[tuple[torch.Tensor, torch.Tensor]], fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Training and evaluation tokens from per-corpus `(activations, sequence_ids)` parts,
    and the evaluation split's name (`held_out`, or `train` when nothing is held out)."""
    masks = [held_out_mask(seqs, fraction, seed + i) for i, (_, seqs) in enumerate(parts)]
    train_acts = torch.cat([acts[~m] for (acts, _), m in zip(parts, masks, strict=True)])
    eval_acts = torch.cat([acts[m] for (acts, _), m in zip(parts, masks, strict=True)])
    if len(eval_acts) == 0:
        # held_out_fraction 0 (or a single sequence): report training-set numbers.
        return train_acts, train_acts, "train"
    return train_acts, eval_acts, "held_out"


def tensor_batches(activations: torch.Tensor, batch_size: int = 4096) -> Batches:
    """`activations` `[n, d_in]` as the batches `evaluate_batches` reads (twice)."""
    return lambda: (
        activations[lo : lo + batch_size] for lo in range(0, len(activations), batch_size)
    )


@torch.no_grad()
def evaluate_sae(
    sae: SAE, activations: torch.Tensor, batch_size: int = 4096, progress: bool = False
) -> dict[str, float | int]:
    """`evaluate_batches` on in-memory `activations` `[n, d_in]`."""
    return evaluate_batches(sae, tensor_batches(activations, batch_size), progress)


@torch.no_grad()
def evaluate_batches(sae: SAE, batches: Batches, progress: bool = False) -> dict[str, float | int]:
    """Reconstruction and sparsity of `sae` on the tokens `batches()` yields, `[n, d_in]`
    each time (called twice, so a cache too big for memory streams through).

    explained_variance = 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (pooled over
    tokens, as sae-lens logs it); l0 = mean active latents per token; dead_fraction =
    share of latents that never fire on these tokens.
    """
    device = next(sae.parameters()).device
    # Two passes in float64: residual norms are in the thousands, so the one-pass
    # sum(x^2) - n*mean^2 form would lose the variance to cancellation.
    n, total = 0, None
    for x in batches():
        total = x.double().sum(0) if total is None else total + x.double().sum(0)
        n += len(x)
    if n == 0:
        raise ValueError("evaluate_sae needs at least one token")
    mean = total / n
    sq_error = sq_total = 0.0
    active = 0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for x in tqdm(batches(), desc="evaluate SAE", disable=not progress):
        x = x.to(device)
        feats = sae.encode(x)
        x_hat = sae.decode(feats)
        sq_error += (x_hat.double() - x.double()).pow(2).sum().item()
        sq_total += (x.double().cpu() - mean).pow(2).sum().item()
        on = feats > 0
        active += int(on.sum().item())
        fired |= on.any(0)
    return {
        "explained_variance": 1.0 - sq_error / sq_total if sq_total > 0 else float("nan"),
        "l0": active / n,
        "dead_fraction": 1.0 - fired.float().mean().item(),
        "n_tokens": n,
    }


def describe_sae(sae: SAE) -> dict[str, Any]:
    """The SAE facts worth recording next to its metrics."""
    return {
        "architecture": sae.cfg.architecture(),
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
    }
