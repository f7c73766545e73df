"""Evasion perturbations: rewrites of a question a user could type, each deterministic.

They change the question's text only (not the choices, which cloze scoring reads as the
answers), except `template`, which keeps the text and changes the prompt's labels
(`evaluation.prompts.TEMPLATES`). Random ones draw from a generator seeded by the attack
seed and the question's own text, so a question is perturbed the same way whichever subset
or order it comes in.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping

import numpy as np

from sae_unlearn.choices import EVASION_PERTURBATIONS
from sae_unlearn.errors import UserError

# `none` (the question as written) is always scored beside these:
# upper / lower: the case; char_noise: each letter swapped with the next or dropped with
# probability noise_rate; split_words: words of min_split letters or more split in the
# middle by a space; filler: a paragraph of benign text before the question; template:
# "Q: ...\nA:" instead of lm-eval's "Question: ...\nAnswer:"; synonyms: table words
# (those that most often open the gate) replaced by paraphrases.
PERTURBATIONS = EVASION_PERTURBATIONS
_WORD = re.compile(r"[^\W\d_]+")  # runs of letters, accented ones included


def question_rng(seed: int, text: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])


def char_noise(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each letter, with probability `rate`, swapped with the character after it or dropped
    (even odds); other characters stay."""
    chars, out, i = list(text), [], 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < rate:
            if rng.random() < 0.5 and i + 1 < len(chars):
                out += [chars[i + 1], c]
                i += 2
                continue
            i += 1  # dropped
            continue
        out.append(c)
        i += 1
    return "".join(out)


def split_words(text: str, min_letters: int) -> str:
    """Every word of at least `min_letters` letters split in two at its middle."""

    def split(m: re.Match) -> str:
        word = m.group(0)
        if len(word) < min_letters:
            return word
        half = len(word) // 2
        return f"{word[:half]} {word[half:]}"

    return _WORD.sub(split, text)


def _cased_like(word: str, key: str, replacement: str) -> str:
    """The replacement in the case the word departs from its table key with: all capitals,
    or a capital first letter; a word written as its key (an acronym, a name) takes the
    replacement as written."""
    if word == key:
        return replacement
    if word.isupper() and len(word) > 1 and not key.isupper():
        return replacement.upper()
    if word[:1].isupper() and not key[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def replace_synonyms(text: str, table: Mapping[str, str]) -> str:
    """Whole words found in `table` (case-insensitively) replaced, keeping their case."""
    lookup = {k.casefold(): (k, v) for k, v in table.items()}

    def swap(m: re.Match) -> str:
        word = m.group(0)
        entry = lookup.get(word.casefold())
        return word if entry is None else _cased_like(word, *entry)

    return _WORD.sub(swap, text)


def filler_paragraph(documents: list[str], n_words: int) -> str:
    """The first `n_words` words of the first document that has that many (benign text)."""
    for doc in documents:
        words = doc.split()
        if len(words) >= n_words:
            return " ".join(words[:n_words])
    raise UserError(
        f"no retain-corpus document has {n_words} words for the evasion filler. Fix: lower "
        "attack.evasion.filler_words"
    )


def perturb_question(
    text: str,
    kind: str,
    *,
    seed: int,
    noise_rate: float,
    min_split: int,
    filler: str,
    synonyms: Mapping[str, str],
) -> str:
    """The question text under perturbation `kind` (`template` leaves it as it is)."""
    if kind == "upper":
        return text.upper()
    if kind == "lower":
        return text.lower()
    if kind == "char_noise":
        return char_noise(text, noise_rate, question_rng(seed, text))
    if kind == "split_words":
        return split_words(text, min_split)
    if kind == "filler":
        return f"{filler} {text}"
    if kind == "synonyms":
        return replace_synonyms(text, synonyms)
    if kind == "template":
        return text
    raise UserError(f"unknown evasion perturbation {kind!r}; choose from {list(PERTURBATIONS)}")
