"""build_embedded: sorted, deterministic, validated; the committed files match their sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sae_unlearn.data.build import build_embedded
from sae_unlearn.data.embedded import embedded_root
from sae_unlearn.data.schema import ALL_ROLES, DataError
from sae_unlearn.data.sources import load_questions
from tests.data.samples import QUESTIONS, with_bad_row, write_jsonl


def test_build_embedded_is_sorted_and_deterministic(tmp_path):
    src = tmp_path / "src"
    for role in ALL_ROLES:
        (src / "corpus" / role).mkdir(parents=True)
        (src / "questions").mkdir(exist_ok=True)
    (src / "corpus/forget/b_01_second_topic.txt").write_text("Two.\n", encoding="utf-8")
    (src / "corpus/forget/a_02_first_topic.txt").write_text(
        "One  \r\n\r\n\r\n\r\nstill one.\n", encoding="utf-8"
    )
    write_jsonl(src / "questions/forget_questions.jsonl", QUESTIONS)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert build_embedded(src, out_a) == {"forget_corpus": 2, "forget_questions": 3}
    build_embedded(src, out_b)
    for path in out_a.iterdir():
        assert path.read_bytes() == (out_b / path.name).read_bytes()
    docs = [json.loads(line) for line in (out_a / "forget_corpus.jsonl").read_text().splitlines()]
    assert docs == [
        {"title": "First topic", "text": "One\n\nstill one."},
        {"title": "Second topic", "text": "Two."},
    ]
    qs = [json.loads(line) for line in (out_a / "forget_questions.jsonl").read_text().splitlines()]
    assert [q["question"] for q in qs] == [
        "Which cells make antibodies?",
        "What coats a virus?",
        "Which virus causes AIDS?",
    ]
    # The built file is what `embedded` loads.
    frame = load_questions("embedded", "forget", embedded_dir=out_a)
    assert frame.to_dict("records") == qs


def test_build_embedded_names_the_bad_source(tmp_path):
    src = tmp_path / "src"
    (src / "questions").mkdir(parents=True)
    qpath = write_jsonl(src / "questions/retain_questions.jsonl", with_bad_row(answer="two"))
    with pytest.raises(DataError, match=re.escape(f"{qpath}: row 2: answer 'two' is not an int")):
        build_embedded(src, tmp_path / "out")
    (src / "corpus/forget").mkdir(parents=True)
    empty = src / "corpus/forget/a_01_x.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{empty}: empty document")):
        build_embedded(src, tmp_path / "out")


SOURCES = Path(__file__).resolve().parents[2] / "data" / "embedded_src"
EMBEDDED_FILES = [
    embedded_root() / f"{role}_{kind}.jsonl"
    for role in ALL_ROLES
    for kind in ("corpus", "questions")
]


@pytest.mark.skipif(
    not all(p.is_file() for p in EMBEDDED_FILES) or not SOURCES.is_dir(),
    reason="needs a repository checkout with the embedded data built from data/embedded_src",
)
def test_committed_embedded_data_matches_its_sources(tmp_path):
    # Editing a source without rebuilding would silently evaluate on the old data.
    counts = build_embedded(SOURCES, tmp_path)
    assert sorted(counts) == sorted(p.name.removesuffix(".jsonl") for p in EMBEDDED_FILES)
    for path in EMBEDDED_FILES:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), (
            f"{path} is stale: run `python scripts/build_embedded_data.py`"
        )
