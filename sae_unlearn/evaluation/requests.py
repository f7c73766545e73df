"""Requests (a context and one continuation per choice) and their lm-eval tokenisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.prompts import answer_choices, answer_continuations, prompt_texts

TokenPair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class Request:
    """One question: a shared context and one continuation per choice."""

    context: str
    continuations: tuple[str, ...]
    choice_chars: tuple[int, ...] = field(default=())


def build_requests(
    questions: pd.DataFrame,
    fmt: str,
    fewshot: pd.DataFrame | None = None,
    suffix: str = "",
    template: str = "lm-eval",
) -> list[Request]:
    """lm-eval style requests; `fewshot` rows are prepended as solved examples."""
    contexts = prompt_texts(questions, fmt, suffix=suffix, fewshot=fewshot, template=template)
    return [
        Request(
            context=context,
            continuations=answer_continuations(list(row.choices), fmt),
            # lm-eval's acc_norm length: of the letter in letter format, as its tasks score it
            choice_chars=tuple(len(c) for c in answer_choices(list(row.choices), fmt)),
        )
        for context, row in zip(contexts, questions.itertuples(index=False), strict=True)
    ]


def encode_pair(tokenizer: PreTrainedTokenizerBase, context: str, continuation: str) -> TokenPair:
    """lm-eval's `_encode_pair`: encode context+continuation whole, split at the context length.

    Trailing context whitespace moves to the continuation, and a BOS token starts the
    context (as lm-eval does for Gemma models).
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        whole, ctx = [tokenizer.bos_token_id] + whole, [tokenizer.bos_token_id] + ctx
    return ctx, whole[len(ctx) :]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """A prompt's ids as `encode_pair` gives the context (BOS first, trailing space dropped)."""
    ids, _ = encode_pair(tokenizer, text, "")
    return ids


def left_padded(encoded: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of several lengths as one batch, padded on the left so every row's next token
    comes at the same column: `(ids, attention_mask)`."""
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for j, e in enumerate(encoded):
        ids[j, width - len(e) :] = torch.tensor(list(e))
        mask[j, width - len(e) :] = 1
    return ids, mask


def encode_requests(
    tokenizer: PreTrainedTokenizerBase, requests: Sequence[Request]
) -> list[TokenPair]:
    """Every (request, continuation) as token ids, request by request."""
    return [encode_pair(tokenizer, r.context, c) for r in requests for c in r.continuations]


def per_request(requests: Sequence[Request], scores: Sequence[float]) -> list[list[float]]:
    """Flat per-continuation scores regrouped `[n_requests][n_choices]`."""
    out, k = [], 0
    for r in requests:
        out.append(list(scores[k : k + len(r.continuations)]))
        k += len(r.continuations)
    return out
