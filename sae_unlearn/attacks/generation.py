"""Gibberish check: the perplexity of greedy continuations (from `generation.greedy_generate`,
the one greedy decoder) under a model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.requests import encode_prompt
from sae_unlearn.evaluation.scoring import continuation_logprobs


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
