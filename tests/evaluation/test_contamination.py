"""The contaminated retain roles: the sentence each question gets, the text, the half kept
from the original question, and the known mark taken from it."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from sae_unlearn.data.splits import question_split
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.contamination import (
    CONTAMINATED,
    EVAL_ROLES,
    SENTENCES,
    contaminate,
    contamination_sentence,
    with_contaminated,
)
from sae_unlearn.evaluation.run import add_baseline_known, evaluate_sets
from tests.evaluation.helpers import QUESTIONS, questions

FORGET_WORDS = (
    "flu", "virus", "bacteria", "infection", "vaccine", "germs", "cold", "fever", "antibiotic",
    "measles", "mosquito", "parasite", "lice", "rabies", "pneumonia", "chickenpox", "bug",
    "sanitiser", "tetanus", "sore throat", "malaria", "fungus", "antiseptic",
)  # fmt: skip


def test_at_least_24_distinct_benign_sentences_each_naming_a_forget_topic_word():
    assert len(SENTENCES) >= 24 and len(set(SENTENCES)) == len(SENTENCES)
    for sentence in SENTENCES:
        assert any(w in sentence.lower() for w in FORGET_WORDS), sentence
        assert sentence.endswith(".") and "\n" not in sentence


def test_the_sentence_is_a_salted_hash_of_the_normalised_question():
    q = "Which insect spreads malaria?"
    digest = hashlib.sha256(b"sae-unlearn contamination\x00" + q.casefold().encode()).digest()
    assert contamination_sentence(q) == SENTENCES[int.from_bytes(digest[:8], "big") % 28]
    # Whitespace and case do not change it, as they do not change the question's half.
    same = contamination_sentence("  which insect\n spreads  MALARIA? ")
    assert same == contamination_sentence(q)
    # Over many questions the choice spreads across the list.
    texts = [f"Question number {i} about rivers?" for i in range(200)]
    assert len({contamination_sentence(t) for t in texts}) == len(SENTENCES)


def test_contaminated_text_is_sentence_space_question_and_nothing_else_changes():
    got = contaminate(QUESTIONS)
    assert len(got) == len(QUESTIONS)
    for row, orig in zip(got.itertuples(), QUESTIONS.itertuples(), strict=True):
        assert row.question == f"{contamination_sentence(orig.question)} {orig.question}"
        assert row.original_question == orig.question
        assert list(row.choices) == list(orig.choices)
        assert (row.answer, row.subject) == (orig.answer, orig.subject)
    assert QUESTIONS["question"].tolist()[0] == "Which insect spreads malaria?"  # not in place


def test_the_choice_does_not_depend_on_row_order():
    forward = contaminate(QUESTIONS)
    backward = contaminate(QUESTIONS.iloc[::-1])
    assert dict(zip(forward["original_question"], forward["question"], strict=True)) == dict(
        zip(backward["original_question"], backward["question"], strict=True)
    )


def test_contaminated_roles_follow_their_source_roles_when_present():
    two = with_contaminated({"forget": QUESTIONS, "retain": QUESTIONS})
    assert list(two) == ["forget", "retain", "retain_contaminated"]
    three = with_contaminated({"forget": QUESTIONS, "retain": QUESTIONS, "retain_near": QUESTIONS})
    assert list(three)[-2:] == ["retain_contaminated", "retain_near_contaminated"]
    assert EVAL_ROLES == ("forget", "retain", "retain_near", *CONTAMINATED)


def test_contaminated_questions_keep_the_half_of_their_original(tiny_model):
    model, tokenizer = tiny_model
    retain = questions(12, "geography")
    sets = with_contaminated({"retain": retain})
    # The test can fail: some contaminated texts hash to the other half.
    assert [question_split(q) for q in sets["retain_contaminated"]["question"]] != [
        question_split(q) for q in retain["question"]
    ]
    cfg = EvalConfig(format="cloze", batch_size=8, bootstrap=20)
    results, metrics = evaluate_sets(model, tokenizer, sets, cfg)
    halves = [question_split(q) for q in retain["question"]]
    assert results["retain_contaminated"]["split"].tolist() == halves
    assert results["retain"]["split"].tolist() == halves
    assert results["retain_contaminated"]["question"].tolist() == (
        sets["retain_contaminated"]["question"].tolist()
    )
    assert results["retain_contaminated"]["original_question"].tolist() == (
        retain["question"].tolist()
    )
    block = metrics["retain_contaminated"]
    assert block["n"] == 12 and block["dev"]["n"] == halves.count("dev")
    assert list(block["by_subject"]) == ["geography"]


def test_a_contaminated_question_is_known_when_its_original_is():
    cfg = EvalConfig(format="cloze")
    results = {  # the contaminated role first: its source's mark is still set first
        "retain_contaminated": pd.DataFrame({"correct": [False, True, True]}),
        "retain": pd.DataFrame({"correct": [True, False, True]}),
    }
    metrics: dict = {"retain": {}, "retain_contaminated": {}}
    add_baseline_known(None, None, {}, results, metrics, cfg)
    assert results["retain"]["known"].tolist() == [True, False, True]
    assert results["retain_contaminated"]["known"].tolist() == [True, False, True]
    summary = metrics["retain_contaminated"]["known_correct"]
    assert summary == {"n": 2, "share": pytest.approx(2 / 3)}
