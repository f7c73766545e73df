"""The embedded data: shipped as package data and found from any working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sae_unlearn.data
from sae_unlearn.data.embedded import embedded_root
from sae_unlearn.data.schema import ALL_ROLES, DataError
from sae_unlearn.data.sources import load_corpus, load_questions


def test_missing_embedded_file_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match=r"forget_corpus.jsonl: embedded corpus file is missing"):
        load_corpus("embedded", "forget", embedded_dir=tmp_path)


EMBEDDED_FILES = [
    embedded_root() / f"{role}_{kind}.jsonl"
    for role in ALL_ROLES
    for kind in ("corpus", "questions")
]


@pytest.mark.skipif(
    not all(p.is_file() for p in EMBEDDED_FILES),
    reason="embedded data not built yet: run `python scripts/build_embedded_data.py`",
)
def test_committed_embedded_data_is_valid():
    questions = {role: load_questions("embedded", role) for role in ALL_ROLES}
    corpora = {role: load_corpus("embedded", role) for role in ALL_ROLES}
    for role in ALL_ROLES:
        assert len(corpora[role]) >= 10 and len(questions[role]) >= 20
        assert corpora[role]["source"].is_unique
    # The forget and retain sets must not share questions, or unlearning scores leak.
    assert not set(questions["forget"]["question"]) & set(questions["retain"]["question"])


def test_embedded_files_ship_inside_the_package():
    # Package data (not a repository folder) is what a wheel or a non-editable install carries.
    package_dir = Path(sae_unlearn.data.__file__).resolve().parent
    assert Path(str(embedded_root())).resolve() == package_dir / "embedded"
    assert all(p.is_file() for p in EMBEDDED_FILES)


def test_embedded_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    questions = load_questions("embedded", "forget")
    corpus = load_corpus("embedded", "retain")
    question_lines = (embedded_root() / "forget_questions.jsonl").read_text("utf-8").splitlines()
    corpus_lines = (embedded_root() / "retain_corpus.jsonl").read_text("utf-8").splitlines()
    assert len(questions) == len(question_lines) > 0
    assert questions["question"][0] == json.loads(question_lines[0])["question"]
    first_doc = json.loads(corpus_lines[0])
    # The recorded origin names the role, never where the package happens to be installed.
    assert corpus.to_dict("records")[0] == {
        "text": first_doc["text"],
        "source": f"embedded/retain:{first_doc['title']}",
    }


def test_embedded_retain_near_ships_benign_biology():
    # The third role ships: biology without pathogens, at least 250 questions over 5 subjects.
    questions = load_questions("embedded", "retain_near")
    assert len(questions) >= 250
    assert questions["subject"].nunique() >= 5
    corpus = load_corpus("embedded", "retain_near")
    assert len(corpus) >= 30
    assert corpus["source"].str.startswith("embedded/retain_near:").all()


def test_embedded_file_missing_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="build_embedded_data.py"):
        load_questions("embedded", "retain_near", embedded_dir=tmp_path)
