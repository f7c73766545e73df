"""Dev/test halves by a hash of the question text: stable, disjoint, balanced."""

from __future__ import annotations

import hashlib
import random

import pandas as pd

from sae_unlearn.data import embedded_file, read_question_file
from sae_unlearn.data.splits import normalise_question_text, question_split, question_splits


def test_split_is_the_parity_of_the_first_sha256_byte_of_the_normalised_text():
    # Written out by hand: sha256("what coats a virus?") starts 0x24 (even: dev),
    # sha256("which cells make antibodies?") 0x25 (odd: test).
    assert hashlib.sha256(b"what coats a virus?").hexdigest()[:2] == "24"
    assert hashlib.sha256(b"which cells make antibodies?").hexdigest()[:2] == "25"
    assert question_split("What coats a virus?") == "dev"
    assert question_split("Which cells make antibodies?") == "test"
    assert question_split("Which virus causes AIDS?") == "dev"  # 0x6e


def test_normalisation_ignores_case_spacing_and_unicode_forms():
    assert normalise_question_text("  What   coats\na VIRUS? ") == "what coats a virus?"
    # NFKC folds the full-width question mark and the non-breaking space.
    assert normalise_question_text("What coats a\u00a0virus\uff1f") == "what coats a virus?"
    assert question_split("WHAT COATS  A VIRUS?") == question_split("What coats a virus?")


def embedded_questions(role: str) -> pd.DataFrame:
    with embedded_file("questions", role) as path:
        return read_question_file(path)


def test_split_is_stable_under_reordering_and_the_halves_are_disjoint():
    texts = embedded_questions("forget")["question"].tolist()
    first = dict(zip(texts, question_splits(texts), strict=True))
    shuffled = list(texts)
    random.Random(3).shuffle(shuffled)
    again = dict(zip(shuffled, question_splits(shuffled), strict=True))
    assert first == again
    dev = {normalise_question_text(t) for t, s in first.items() if s == "dev"}
    test = {normalise_question_text(t) for t, s in first.items() if s == "test"}
    assert dev and test and not dev & test and len(dev) + len(test) == len(texts)


def test_embedded_sets_split_roughly_in_half():
    # Counted once: forget 137 of 270 in dev, retain 143 of 270, retain_near 146 of 280.
    for role, n, n_dev in (("forget", 270, 137), ("retain", 270, 143), ("retain_near", 280, 146)):
        splits = question_splits(embedded_questions(role)["question"])
        assert len(splits) == n and splits.count("dev") == n_dev
        assert 0.4 <= splits.count("dev") / len(splits) <= 0.6
