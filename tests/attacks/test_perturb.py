"""The evasion perturbations: each a deterministic rewrite of a question's text."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from sae_unlearn.attacks.perturb import (
    PERTURBATIONS,
    char_noise,
    filler_paragraph,
    perturb_question,
    question_rng,
    replace_synonyms,
    split_words,
)
from sae_unlearn.errors import UserError

TEXT = "Which insect spreads malaria, and how fast?"
TABLE = {
    "virus": "microscopic invader",
    "HIV": "the immunodeficiency agent",
    "infect": "invade",
}
KW = dict(seed=0, noise_rate=0.1, min_split=6, filler="Some filler.", synonyms=TABLE)


class ScriptedRng:
    """Stands in for a numpy Generator: `random()` returns the scripted draws in order."""

    def __init__(self, draws):
        self.draws = list(draws)

    def random(self):
        return self.draws.pop(0)


def non_letters(text: str) -> list[str]:
    return [c for c in text if not c.isalpha()]


def test_upper_and_lower():
    assert perturb_question(TEXT, "upper", **KW) == "WHICH INSECT SPREADS MALARIA, AND HOW FAST?"
    assert perturb_question(TEXT, "lower", **KW) == "which insect spreads malaria, and how fast?"


def test_question_rng_is_seeded_by_seed_and_text():
    # The same generator numpy gives for the entropy [seed, crc32(text)].
    expected = np.random.default_rng([3, zlib.crc32(TEXT.encode("utf-8"))]).random(5)
    np.testing.assert_array_equal(question_rng(3, TEXT).random(5), expected)
    assert list(question_rng(3, TEXT).random(5)) != list(question_rng(4, TEXT).random(5))
    assert list(question_rng(3, TEXT).random(5)) != list(question_rng(3, TEXT + " ").random(5))


def test_char_noise_by_scripted_draws():
    # "ab c!d": a noised (0.1 < 0.5) and swapped (0.2 < 0.5) with b -> "ba"; the space is
    # not a letter (no draw); c kept (0.7 >= 0.5); d noised (0.3) and dropped (0.8 >= 0.5).
    rng = ScriptedRng([0.1, 0.2, 0.7, 0.3, 0.8])
    assert char_noise("ab c!d", 0.5, rng) == "ba c!"
    assert rng.draws == []
    # A letter swapped with a non-letter after it; the last letter has nothing to swap
    # with, so "swap" drops it: "x," -> ",x" then "y" dropped.
    assert char_noise("x,y", 1.0, ScriptedRng([0.0, 0.1, 0.0, 0.1])) == ",x"
    # Rate 0.5 and a draw of exactly 0.5: not noised.
    assert char_noise("z", 0.5, ScriptedRng([0.5])) == "z"


def test_char_noise_draws_nothing_for_non_letters():
    rng = ScriptedRng([])  # any draw would fail
    assert char_noise("123 ,.?! 42", 1.0, rng) == "123 ,.?! 42"


def test_char_noise_at_rate_zero_keeps_the_text():
    assert char_noise(TEXT, 0.0, question_rng(0, TEXT)) == TEXT


def test_char_noise_at_rate_one_changes_every_letter():
    text = "abcdefgh"
    # At rate 1 every letter reached is noised: draw 1 (always < 1), then draw 2 picks
    # swap (< 0.5, and not the last character) or drop. Replay the draws by hand.
    draws = np.random.default_rng([5, zlib.crc32(text.encode("utf-8"))]).random(2 * len(text))
    swaps = dropped = i = k = 0
    expected = ""
    while i < len(text):
        swap = draws[k + 1] < 0.5 and i + 1 < len(text)
        k += 2
        if swap:
            expected += text[i + 1] + text[i]
            swaps, i = swaps + 1, i + 2
        else:
            dropped, i = dropped + 1, i + 1
    got = char_noise(text, 1.0, question_rng(5, text))
    assert got == expected
    # Every letter was swapped or dropped: the output is the swapped pairs only.
    assert 2 * swaps + dropped == len(text)
    assert len(got) == 2 * swaps and got != text


def test_char_noise_is_deterministic_and_only_touches_letters():
    text = "What do 3 viruses, 12 bacteria and 1 prion share? (Be brief.)"
    first = char_noise(text, 0.3, question_rng(0, text))
    assert first == char_noise(text, 0.3, question_rng(0, text))
    assert first != char_noise(text, 0.3, question_rng(1, text))
    assert first != text
    for seed in range(5):
        out = char_noise(text, 0.3, question_rng(seed, text))
        # Non-letters are never dropped and keep their order (a swap moves a letter
        # past one character only).
        assert non_letters(out) == non_letters(text)
        assert len(out) <= len(text)


def test_split_words_at_the_middle():
    assert (
        split_words("Transmission of pathogens is rapid.", 6)
        == "Transm ission of path ogens is rapid."
    )
    # Exactly min_letters is split; one fewer is not; an odd length puts the extra letter
    # in the second half; letters-only words, so digits and hyphens separate words.
    assert split_words("abcdef abcde", 6) == "abc def abcde"
    assert split_words("COVID19 well-known", 5) == "CO VID19 well-kn own"
    assert split_words("Mosquitoes", 2) == "Mosqu itoes"
    assert split_words("", 3) == ""


def test_replace_synonyms_whole_words_keeping_case():
    assert replace_synonyms("Virus", TABLE) == "Microscopic invader"
    assert replace_synonyms("a virus", TABLE) == "a microscopic invader"
    assert replace_synonyms("THE VIRUS", TABLE) == "THE MICROSCOPIC INVADER"
    assert replace_synonyms("Does a virus infect?", TABLE) == ("Does a microscopic invader invade?")
    assert replace_synonyms("how does hiv spread", TABLE) == (
        "how does the immunodeficiency agent spread"
    )
    # Inflections and words containing a key are other words.
    assert replace_synonyms("viruses", TABLE) == "viruses"
    assert replace_synonyms("antivirus coronavirus infection", TABLE) == (
        "antivirus coronavirus infection"
    )
    assert replace_synonyms("viruses", {**TABLE, "viruses": "invaders"}) == "invaders"
    # Punctuation and hyphens end a word.
    assert replace_synonyms("virus-like (virus)!", TABLE) == (
        "microscopic invader-like (microscopic invader)!"
    )
    assert replace_synonyms("no key words here", TABLE) == "no key words here"


def test_replace_synonyms_keeps_an_acronym_keys_value_as_written():
    assert replace_synonyms("How does HIV spread?", TABLE) == (
        "How does the immunodeficiency agent spread?"
    )


def test_replace_synonyms_follows_the_case_a_word_departs_from_its_key_with():
    assert replace_synonyms("VIRUS SPREAD", TABLE).startswith("MICROSCOPIC INVADER")
    assert replace_synonyms("Virus", TABLE) == "Microscopic invader"
    # A one-letter capital is title case, not all caps.
    assert replace_synonyms("I", {"i": "me"}) == "Me"


def test_filler_paragraph_takes_the_first_long_enough_document():
    docs = ["too short", "one two\nthree   four five", "a b c d e f"]
    assert filler_paragraph(docs, 4) == "one two three four"
    assert filler_paragraph(docs, 2) == "too short"
    assert filler_paragraph(docs, 6) == "a b c d e f"
    with pytest.raises(UserError, match="has 7 words.*filler_words"):
        filler_paragraph(docs, 7)
    with pytest.raises(UserError, match="filler_words"):
        filler_paragraph([], 1)


def test_perturb_question_kinds():
    text = "Can a virus infect bacteria?"
    assert perturb_question(text, "template", **KW) == text
    assert perturb_question(text, "filler", **KW) == "Some filler. Can a virus infect bacteria?"
    assert perturb_question(text, "split_words", **KW) == "Can a virus inf ect bact eria?"
    assert perturb_question(text, "synonyms", **KW) == "Can a microscopic invader invade bacteria?"
    rate0 = {**KW, "noise_rate": 0.0}
    assert perturb_question(text, "char_noise", **rate0) == text
    # char_noise depends on the seed and the text only, not on call order.
    noisy = {**KW, "noise_rate": 0.5}
    first = perturb_question(text, "char_noise", **noisy)
    perturb_question("another question", "char_noise", **noisy)
    assert perturb_question(text, "char_noise", **noisy) == first
    assert first != perturb_question(text, "char_noise", **{**noisy, "seed": 1})
    assert non_letters(first) == non_letters(text)


def test_every_listed_perturbation_is_known_and_others_are_refused():
    assert set(PERTURBATIONS) == {
        "upper",
        "lower",
        "char_noise",
        "split_words",
        "filler",
        "template",
        "synonyms",
    }
    for kind in PERTURBATIONS:
        perturb_question("A question?", kind, **KW)
    with pytest.raises(UserError, match="unknown evasion perturbation 'shout'"):
        perturb_question("A question?", "shout", **KW)
    with pytest.raises(UserError, match="none"):
        # `none` is scored by the attack itself, it is no perturbation.
        perturb_question("A question?", "none", **KW)


def test_a_key_inside_a_word_with_an_accented_letter_is_not_replaced():
    assert replace_synonyms("virusé", TABLE) == "virusé"
