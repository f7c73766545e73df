"""What GCG optimises over: prompts split around the suffix, the tokens a suffix may use,
and the check that a suffix survives being written into the prompt as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.prompts import split_at_suffix, target_continuation
from sae_unlearn.evaluation.requests import encode_pair, encode_prompt


@dataclass(frozen=True)
class GCGPrompt:
    """One question as GCG sees it: [before][suffix][after] -> target, all token ids.

    The optimised ids decode to " " + suffix: the space that `format_prompt` puts
    between question and suffix belongs to the first suffix token, as it does when the
    evaluation prompt is tokenised whole.
    """

    before: list[int]
    after: list[int]
    target: list[int]
    text_before: str
    text_after: str
    continuation: str


def gcg_prompts(
    tokenizer: PreTrainedTokenizerBase, questions: pd.DataFrame, fmt: str
) -> list[GCGPrompt]:
    """The prompts GCG optimises over, targeting each question's correct answer."""
    prompts = []
    bos = 1 if tokenizer.bos_token_id is not None else 0
    for row in questions.itertuples(index=False):
        choices = list(row.choices)
        before, after = split_at_suffix(row.question, choices, row.subject, fmt)
        continuation = target_continuation(choices, int(row.answer), fmt)
        ctx, cont = encode_pair(tokenizer, after, continuation)
        prompts.append(
            GCGPrompt(
                encode_prompt(tokenizer, before), ctx[bos:], cont, before, after, continuation
            )
        )
    return prompts


def allowed_token_mask(tokenizer: PreTrainedTokenizerBase, vocab_size: int, allow_non_ascii: bool):
    """Tokens the suffix may use: no special or added tokens; by default only tokens that
    decode to printable ASCII (nanoGCG's rule), which also keeps newlines out."""
    ok = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(vocab_size, len(tokenizer))
    single = [[i] for i in range(n)]
    # The Rust backend decodes the 262k single tokens in 0.6 s where `batch_decode` loops in
    # Python for 2.6 s; it skips only the clean-up of spaces before punctuation, which never
    # makes a text empty, non-ASCII or unprintable.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    texts = backend.decode_batch(single) if backend is not None else tokenizer.batch_decode(single)
    ok[:n] = torch.tensor(
        [
            bool(text) and (allow_non_ascii or (text.isascii() and text.isprintable()))
            for text in texts
        ],
        dtype=torch.bool,
    )
    banned = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    for i in banned:
        if 0 <= i < vocab_size:
            ok[i] = False
    return ok


def suffix_text(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str | None:
    """The suffix string for optimised ids (their text less the separating space), or
    None when they decode to nothing printable."""
    text = tokenizer.decode(list(ids))
    suffix = text[1:] if text.startswith(" ") else text
    return suffix if suffix.strip() else None


def round_trips(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[GCGPrompt], ids: Sequence[int]
) -> bool:
    """Whether each evaluation prompt with this suffix tokenises to exactly the ids GCG
    scored (nanoGCG's `filter_ids`, checked in context so merges across the suffix's
    boundaries are caught too)."""
    suffix = suffix_text(tokenizer, ids)
    if suffix is None:
        return False
    for p in prompts:
        ctx, cont = encode_pair(
            tokenizer, p.text_before + " " + suffix + p.text_after, p.continuation
        )
        if ctx != p.before + list(ids) + p.after or cont != p.target:
            return False
    return True
