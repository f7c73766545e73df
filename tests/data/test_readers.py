"""File formats: jsonl, json, csv, txt and parquet read back to the same records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sae_unlearn.data.schema import DataError
from sae_unlearn.data.sources import load_corpus, load_questions
from tests.data.samples import DOCS, QUESTIONS, with_bad_row, write_any, write_jsonl


def test_csv_choices_must_be_a_json_list(tmp_path):
    path = tmp_path / "qs.csv"
    pd.DataFrame([{**QUESTIONS[0], "choices": "a; b; c; d"}]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_questions(str(path))
    assert f"{path}: row 1: choices is str 'a; b; c; d'" in str(err.value)
    assert "in CSV, a JSON list" in str(err.value)


def test_csv_letter_answer_is_refused(tmp_path):
    path = write_any(tmp_path / "qs.csv", with_bad_row(answer="C"))
    with pytest.raises(DataError, match=r"qs.csv: row 2: answer 'C' is not an int"):
        load_questions(str(path))


def test_invalid_jsonl_line_is_named(tmp_path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qs.jsonl: line 2: not valid JSON .*Fix: write one JSON"):
        load_questions(str(path))


def test_empty_file_unknown_suffix_and_missing_file(tmp_path):
    empty = tmp_path / "qs.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qs.jsonl: has no rows. Fix: add at least one row"):
        load_questions(str(empty))
    with pytest.raises(DataError, match=r"unsupported file type '.xlsx'. Fix: use one of"):
        load_questions(str(tmp_path / "qs.xlsx"))
    with pytest.raises(DataError, match=r"nope.jsonl: no such file. Fix: check the path"):
        load_questions(str(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_question_formats_round_trip(tmp_path, suffix):
    path = write_any(tmp_path / f"qs{suffix}", QUESTIONS)
    frame = load_questions(str(path))
    assert list(frame.columns) == ["question", "choices", "answer", "subject"]
    assert frame.to_dict("records") == QUESTIONS
    assert frame["answer"].dtype == "int64"


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_corpus_formats_round_trip(tmp_path, suffix):
    path = write_any(tmp_path / f"c{suffix}", DOCS)
    frame = load_corpus(str(path))
    assert frame["text"].tolist() == [d["text"] for d in DOCS]
    assert frame["source"].tolist() == [f"c{suffix}:{d['title']}" for d in DOCS]


def test_txt_corpus_splits_on_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(
        "First doc\nstill first.\n\n\n  \nSecond doc.\r\n\r\nThird.\n", encoding="utf-8"
    )
    frame = load_corpus(str(path))
    assert frame["text"].tolist() == ["First doc\nstill first.", "Second doc.", "Third."]
    assert frame["source"].tolist() == ["c.txt:1", "c.txt:2", "c.txt:3"]


def test_explicit_source_column_is_kept_and_cap_keeps_the_first_documents(tmp_path):
    rows = [{"text": d["text"], "source": f"book-{i}"} for i, d in enumerate(DOCS)]
    frame = load_corpus(str(write_jsonl(tmp_path / "c.jsonl", rows)), max_documents=2)
    assert frame.to_dict("records") == [
        {"text": DOCS[0]["text"], "source": "book-0"},
        {"text": DOCS[1]["text"], "source": "book-1"},
    ]
