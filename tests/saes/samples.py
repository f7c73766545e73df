"""Shared SAE test settings and a hand-built Gemma-Scope-like SAE."""

from __future__ import annotations

import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

from sae_unlearn.saes.config import SAETrainConfig

D = 16
# Few, small steps: the tests must stay fast on a busy 2-core CPU.
FAST = SAETrainConfig(
    d_sae=64, k=4, lr=3e-3, batch_size=128, training_tokens=128 * 250, dead_steps=20
)


def gemma_scope_like(d_in: int = D, d_sae: int = 32) -> JumpReLUSAE:
    """A JumpReLU SAE as Gemma Scope's come through sae-lens: unit-norm decoder rows,
    raw-activation units, a learned threshold per latent."""
    torch.manual_seed(0)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae))
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, d_in), dim=-1))
        sae.b_enc.copy_(torch.randn(d_sae) * 0.1)
        sae.b_dec.copy_(torch.randn(d_in) * 0.1)
        sae.threshold.copy_(torch.rand(d_sae))
    return sae
