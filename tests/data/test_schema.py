"""Validation: every bad question or corpus row is refused with its file, row and fix."""

from __future__ import annotations

import pandas as pd
import pytest

from sae_unlearn.data.schema import DataError, normalise_questions
from sae_unlearn.data.sources import load_corpus, load_questions
from tests.data.samples import DOCS, QUESTIONS, with_bad_row, write_jsonl

BAD_QUESTIONS = {
    "three choices": (with_bad_row(choices=["a", "b", "c"]), "row 2: 3 choices", "exactly 4"),
    "five choices": (with_bad_row(choices=list("abcde")), "row 2: 5 choices", "exactly 4"),
    "choices not a list": (
        with_bad_row(choices="a|b|c|d"),
        "row 2: choices is str",
        "list of 4 strings",
    ),
    "answer too big": (with_bad_row(answer=4), "row 2: answer 4 is out of range", "0..3"),
    "answer negative": (with_bad_row(answer=-1), "row 2: answer -1 is out of range", "0..3"),
    "answer letter": (with_bad_row(answer="B"), "row 2: answer 'B' is not an int", "not a letter"),
    "answer float": (with_bad_row(answer=1.5), "row 2: answer 1.5 is not an int", "0-based index"),
    "answer bool": (with_bad_row(answer=True), "row 2: answer True is not an int", "0-based index"),
    "empty question": (
        with_bad_row(question="   "),
        "row 2: empty or non-text question",
        "question text",
    ),
    "empty choice": (
        with_bad_row(choices=["a", "", "c", "d"]),
        "row 2: choice 1 is empty",
        "non-empty",
    ),
    "null choice": (
        with_bad_row(choices=["a", "b", None, "d"]),
        "row 2: choice 2 is empty",
        "non-empty",
    ),
    "empty subject": (with_bad_row(subject=""), "row 2: empty or non-text subject", '"subject"'),
    "null answer": (with_bad_row(answer=None), "row 2: answer None is not an int", "0-based index"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUESTIONS))
def test_bad_question_row_names_file_row_and_fix(tmp_path, case):
    rows, problem, fix = BAD_QUESTIONS[case]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_questions(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "Fix:" in message and fix in message.split("Fix:")[1]


def test_missing_column_is_named(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "subject"} for r in QUESTIONS]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError, match=r"missing column\(s\) \['subject'\]") as err:
        load_questions(str(path))
    assert str(path) in str(err.value) and 'Fix: every row needs "question"' in str(err.value)


def test_key_missing_in_one_row_points_at_that_row(tmp_path):
    rows = [dict(r) for r in QUESTIONS]
    del rows[2]["answer"]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError, match=r": row 3: answer nan is not an int"):
        load_questions(str(path))


def test_duplicate_question_names_both_rows(tmp_path):
    rows = [*QUESTIONS, dict(QUESTIONS[0])]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_questions(str(path))
    assert f"{path}: row 4: duplicate of row 1" in str(err.value)
    assert "Fix: delete one of the two rows" in str(err.value)


def test_same_stem_with_other_choices_is_not_a_duplicate(tmp_path):
    # Benchmarks reuse stems like "Which is true?" with different options.
    other = dict(QUESTIONS[0], choices=["envelope", "spike", "capsule", "pilus"])
    path = write_jsonl(tmp_path / "qs.jsonl", [*QUESTIONS, other])
    assert len(load_questions(str(path))) == 4


def test_bad_corpus_rows_name_file_row_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [DOCS[0], {"title": "x", "text": " \n "}])
    with pytest.raises(DataError) as err:
        load_corpus(str(path))
    assert str(err.value).startswith(f"{path}: row 2: empty or non-text document")
    assert 'Fix: put the document in "text" or delete the row' in str(err.value)

    path = write_jsonl(tmp_path / "c2.jsonl", [DOCS[0], DOCS[1], {"text": "ok", "title": 7}])
    with pytest.raises(DataError, match=r"c2.jsonl: row 3: title is int 7, not a string. Fix:"):
        load_corpus(str(path))

    path = write_jsonl(tmp_path / "c3.jsonl", [{"body": "no text column"}])
    with pytest.raises(DataError, match=r"c3.jsonl: missing column\(s\) \['text'\].*Fix:"):
        load_corpus(str(path))

    with pytest.raises(DataError, match=r"max_documents is 0. Fix: use a positive int"):
        load_corpus(str(write_jsonl(tmp_path / "c4.jsonl", DOCS)), max_documents=0)


def test_prepared_questions_are_valid_input_again(tmp_path):
    out = tmp_path / "prep.parquet"
    normalise_questions(pd.DataFrame(QUESTIONS)).to_parquet(out, index=False)
    assert load_questions(str(out)).to_dict("records") == QUESTIONS
