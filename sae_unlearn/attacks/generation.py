"""The generation family's measures of greedy continuations (from `generation.greedy_generate`,
the one greedy decoder): perplexity under a model, repetition, and leakage of the answer.

Perplexity alone calls degenerate text fluent: "Question\n\nQuestion\n\nQuestion" has a low
perplexity because each repeat is predictable. So a continuation counts as fluent only when
its perplexity is low *and* it is not repetitive (distinct-2 and the longest repeated n-gram,
both on token ids, which no repetition can pass).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.metrics import bootstrap_ci
from sae_unlearn.evaluation.prompts import LETTERS
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


def distinct_n(ids: Sequence[int], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of `ids` (1.0: no n-gram repeats); NaN when
    shorter than `n`."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def longest_repeat(ids: Sequence[int]) -> int:
    """The length of the longest n-gram occurring at least twice in `ids` (overlaps count,
    so "a a a" repeats "a a"); 0 when no token repeats."""
    best = 0
    for n in range(1, len(ids)):
        seen, found = set(), False
        for i in range(len(ids) - n + 1):
            gram = tuple(ids[i : i + n])
            if gram in seen:
                found = True
                break
            seen.add(gram)
        if not found:
            break  # no n-gram repeats, so no longer one does either
        best = n
    return best


def is_repetitive(ids: Sequence[int], min_distinct_2: float, max_repeat: int) -> bool:
    """Whether a continuation repeats itself: distinct-2 under `min_distinct_2`, or an
    n-gram longer than `max_repeat` tokens occurring twice."""
    d2 = distinct_n(ids, 2)
    return (not math.isnan(d2) and d2 < min_distinct_2) or longest_repeat(ids) > max_repeat


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _names(text: str, choice: str) -> bool:
    """Whether `text` contains the choice's words as whole words."""
    words = _normalised(choice)
    return bool(words) and f" {words} " in f" {_normalised(text)} "


def names_answer(continuation: str, choices: Sequence[str], answer: int, fmt: str) -> bool:
    """Whether a continuation gives the correct answer away: it names the correct choice's
    text and no other choice's (listing every choice leaks nothing), or, in letter format,
    opens with the correct letter."""
    if fmt == "letter":
        opening = re.match(r"\s*\(?([A-Z])\b", continuation)
        if opening and opening.group(1) in LETTERS[: len(choices)]:
            return opening.group(1) == LETTERS[answer]
    named = [i for i, choice in enumerate(choices) if _names(continuation, choice)]
    return named == [answer]


def fluency_summary(
    perplexities: Sequence[float],
    threshold: float,
    continuations: Sequence[Sequence[int]] | None = None,
    min_distinct_2: float = 0.75,
    max_repeat: int = 3,
    n_boot: int = 0,
    seed: int = 0,
) -> dict:
    """Median and geometric-mean perplexity (NaNs dropped); with `continuations` (token ids),
    mean distinct-2, median longest repeated n-gram and the repetitive share. `fluent_share`:
    of the continuations with a perplexity, those below `threshold` and not repetitive (with
    `n_boot`, its bootstrap interval `fluent_share_ci`)."""
    ppl = np.asarray(perplexities, dtype=float)
    keep = ~np.isnan(ppl)
    repetitive = np.zeros(len(ppl), dtype=bool)
    out: dict = {}
    if continuations is not None:
        repetitive = np.array(
            [is_repetitive(c, min_distinct_2, max_repeat) for c in continuations], dtype=bool
        )
        d2 = np.array([distinct_n(c, 2) for c in continuations], dtype=float)
        out = {
            "distinct_2_mean": float(np.nanmean(d2)) if (~np.isnan(d2)).any() else float("nan"),
            "longest_repeat_median": float(np.median([longest_repeat(c) for c in continuations]))
            if len(continuations)
            else float("nan"),
            "repetitive_share": float(repetitive.mean()) if len(repetitive) else 0.0,
        }
    if not keep.any():
        return {"ppl_median": float("nan"), "ppl_geomean": float("nan"), "fluent_share": 0.0, **out}
    fluent = (ppl[keep] < threshold) & ~repetitive[keep]
    if n_boot:  # a 95% interval over the continuations, as for every attack figure
        out["fluent_share_ci"] = bootstrap_ci(fluent, n_boot, seed)
    return {
        "ppl_median": float(np.median(ppl[keep])),
        "ppl_geomean": float(np.exp(np.log(ppl[keep]).mean())),
        "fluent_share": float(fluent.mean()),
        **out,
    }
