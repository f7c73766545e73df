"""Gibberish check: greedy continuations, and their perplexity under a model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import DynamicCache
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.forward import decoder, final_hidden, output_logits
from sae_unlearn.evaluation.requests import encode_prompt, left_padded
from sae_unlearn.evaluation.scoring import continuation_logprobs
from sae_unlearn.steering import needs_whole_sequences


@torch.no_grad()
def _greedy_whole(model: nn.Module, ids: list[int], max_new_tokens: int, eos: int | None):
    """Greedy decoding that reruns the whole sequence every step (no KV cache, no padding),
    for hooks that read earlier positions."""
    device = next(model.parameters()).device
    base = decoder(model)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        hidden = final_hidden(base, None, input_ids=torch.tensor([ids + generated], device=device))
        tok = int(output_logits(model, hidden[:, -1]).argmax(-1)[0])
        generated.append(tok)
        if tok == eos:
            break
    return generated


@torch.no_grad()
def greedy_continuations(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int = 20,
    batch_size: int = 16,
) -> list[list[int]]:
    """Greedy continuations (token ids, stopping after EOS) of each prompt, batched with
    left padding and explicit positions."""
    device = next(model.parameters()).device
    base = decoder(model)
    eos = tokenizer.eos_token_id
    if needs_whole_sequences(model):
        return [
            _greedy_whole(model, encode_prompt(tokenizer, t), max_new_tokens, eos) for t in prompts
        ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[list[int]] = []
    for lo in range(0, len(prompts), batch_size):
        encoded = [encode_prompt(tokenizer, t) for t in prompts[lo : lo + batch_size]]
        ids, mask = left_padded(encoded, pad)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        generated = [[] for _ in encoded]
        done = [False] * len(encoded)
        step_ids, step_pos = ids, positions
        for _ in range(max_new_tokens):
            hidden = final_hidden(
                base, cache, input_ids=step_ids, attention_mask=mask, position_ids=step_pos
            )
            nxt = output_logits(model, hidden[:, -1]).argmax(-1)
            for j, tok in enumerate(nxt.tolist()):
                if not done[j]:
                    generated[j].append(tok)
                    done[j] = tok == eos
            if all(done):
                break
            step_ids = nxt[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out.extend(generated)
    return out


def continuation_perplexities(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> list[float]:
    """exp(mean NLL) of each continuation given its prompt, under `model` as it is called."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = [
        (encode_prompt(tokenizer, p), list(c)) for p, c in zip(prompts, continuations, strict=True)
    ]
    scores = continuation_logprobs(model, seqs, pad, batch_size)
    return [
        math.exp(-s / len(c)) if len(c) else float("nan")
        for (s, _), (_, c) in zip(scores, seqs, strict=True)
    ]


def fluency_summary(perplexities: Sequence[float], threshold: float) -> dict:
    """Median and geometric-mean perplexity, and the share below `threshold` (NaNs dropped)."""
    ppl = np.asarray(perplexities, dtype=float)
    ppl = ppl[~np.isnan(ppl)]
    if len(ppl) == 0:
        return {"ppl_median": float("nan"), "ppl_geomean": float("nan"), "fluent_share": 0.0}
    return {
        "ppl_median": float(np.median(ppl)),
        "ppl_geomean": float(np.exp(np.log(ppl).mean())),
        "fluent_share": float((ppl < threshold).mean()),
    }
