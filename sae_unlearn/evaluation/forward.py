"""Model calls shared by scoring, GCG and generation: the decoder's final hidden states (also
in two halves, split after one block), and the LM head applied only where logits are needed
(Gemma 3's 262k-token unembedding would otherwise dominate cost and memory)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from transformers import DynamicCache

from sae_unlearn.models import capture_residuals, decoder_layers, run_to_layers


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


def hidden_after_block(
    base: nn.Module,
    block: int,
    cache: DynamicCache | None = None,
    start: tuple[int, torch.Tensor] | None = None,
    **inputs,
) -> torch.Tensor:
    """The residual stream after decoder block `block` (after any hook on it, which runs), the
    blocks after it and the final norm skipped; extends `cache` in the blocks it runs. With
    `start` (an earlier block and its known output for these tokens), only the blocks after
    that one run."""
    with blocks_stood_in(base, *start) if start is not None else nullcontext():
        with capture_residuals(base, [block], stop_after_last=True) as captured:
            return run_to_layers(base, captured, **inputs, **{_cache_key(base): cache})[block]


class _Skipped(nn.Module):
    """Stands in for a decoder block before the one whose output is known: passes it on."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return hidden_states


class _Known(nn.Module):
    """Stands in for the decoder block whose output is known (transformers 5 blocks return a
    tensor)."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.output


@contextmanager
def blocks_stood_in(base: nn.Module, block: int, output: torch.Tensor) -> Iterator[None]:
    """Blocks 0..`block` stood in for by `output`, block `block`'s known output for the tokens
    of the next forward: neither they nor a hook on them run, and the model's own forward runs
    the rest with its masks and positions. (Slicing the block list would not do: the forward
    picks each block's mask by its index in the list.)"""
    blocks = decoder_layers(base)
    originals = list(blocks[: block + 1])
    try:
        for j in range(block):
            blocks[j] = _Skipped()
        blocks[block] = _Known(output)
        yield
    finally:
        for j, original in enumerate(originals):
            blocks[j] = original


def final_hidden_after_block(
    base: nn.Module, block: int, after: torch.Tensor, cache: DynamicCache | None = None, **inputs
) -> torch.Tensor:
    """`final_hidden` of the tokens in `inputs` given `after`, their residual stream after
    block `block` (`hidden_after_block`), the blocks up to it stood in for."""
    with blocks_stood_in(base, block, after):
        return final_hidden(base, cache, **inputs)


def output_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on selected final hidden states, with Gemma 2's logit soft-capping."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
