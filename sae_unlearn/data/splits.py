"""Dev and test halves of every question set, by a hash of the question text.

A question's half depends on its text alone: sha256 of the normalised text (Unicode NFKC,
whitespace runs collapsed to one space, case-folded), `dev` when the digest's first byte is
even, else `test`. So the same question lands in the same half whatever file, order or role
it comes in, the halves never share a question, and a setting tuned on `dev` is checked on
questions it never saw (`test`).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

SPLITS = ("dev", "test")


def normalise_question_text(question: str) -> str:
    """The text the split hashes: NFKC, single spaces, no outer whitespace, case-folded."""
    return " ".join(unicodedata.normalize("NFKC", question).split()).casefold()


def question_split(question: str) -> str:
    """`dev` or `test`: the parity of the first byte of sha256(normalised text)."""
    digest = hashlib.sha256(normalise_question_text(question).encode("utf-8")).digest()
    return SPLITS[digest[0] % 2]


def question_splits(questions: Iterable[str]) -> list[str]:
    """The half of each question, in order."""
    return [question_split(q) for q in questions]
