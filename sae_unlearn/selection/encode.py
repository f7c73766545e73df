"""Running an SAE's encoder: where it lives and its latents as a dense tensor."""

from __future__ import annotations

import torch
from torch import nn


def sae_device(sae: nn.Module) -> torch.device:
    return next(sae.parameters()).device


def encode_dense(sae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`sae.encode` as a dense tensor (sae-lens TopK SAEs may return a sparse one)."""
    param = next(sae.parameters())
    f = sae.encode(x.to(device=param.device, dtype=param.dtype))
    return f.to_dense() if f.is_sparse else f
