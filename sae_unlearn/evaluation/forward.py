"""Model calls shared by scoring, GCG and generation: the decoder's final hidden states and
the LM head applied only where logits are needed (Gemma 3's 262k-token unembedding would
otherwise dominate cost and memory)."""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import DynamicCache


def decoder(model: nn.Module) -> nn.Module:
    """The model without its LM head."""
    return getattr(model, "model", model)


def _cache_key(base: nn.Module) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept both."""
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def final_hidden(base: nn.Module, cache: DynamicCache | None = None, **inputs) -> torch.Tensor:
    """Last hidden states of the decoder `base`, extending `cache` when one is given."""
    out = base(**inputs, **{_cache_key(base): cache}, use_cache=cache is not None)
    return out.last_hidden_state


def output_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on selected final hidden states, with Gemma 2's logit soft-capping."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
