"""Hub loaders (wmdp-bio, mmlu, wikitext) with `datasets.load_dataset` faked, offline."""

from __future__ import annotations

import json

import datasets
import pytest

from sae_unlearn.data.schema import DataError
from sae_unlearn.data.sources import load_corpus, load_questions, read_question_file, split_wikitext


class FakeHub:
    """Stands in for `datasets.load_dataset`, recording calls, offline."""

    def __init__(self, tables: dict[tuple[str, str], datasets.Dataset]):
        self.tables = tables
        self.calls: list[tuple] = []

    def __call__(self, path, name=None, split=None, **kwargs):
        self.calls.append((path, name, split))
        return self.tables[(path, name)]


WIKITEXT_LINES = [
    "",
    " = Alpha Beta = \n",
    "",
    " Alpha Beta is a band . \n",
    "",
    " = = History = = \n",
    " It formed in 1990 @-@ ish . \n",
    "",
    " = Gamma = \n",
    "",
    " Gamma is a letter . \n",
    " = = = Usage = = = \n",
    " Used in physics . \n",
]


def test_split_wikitext_on_top_level_headings():
    assert split_wikitext(WIKITEXT_LINES) == [
        {
            "title": "Alpha Beta",
            "text": "Alpha Beta is a band .\n= = History = =\nIt formed in 1990 @-@ ish .",
        },
        {"title": "Gamma", "text": "Gamma is a letter .\n= = = Usage = = =\nUsed in physics ."},
    ]
    # Text before the first heading is kept as an untitled document; a heading with no body
    # produces nothing.
    assert split_wikitext(["intro line \n", " = Empty = \n", ""]) == [
        {"title": "", "text": "intro line"}
    ]


def test_wikitext_loader(monkeypatch):
    fake = FakeHub(
        {
            ("Salesforce/wikitext", "wikitext-2-raw-v1"): datasets.Dataset.from_dict(
                {"text": WIKITEXT_LINES}
            )
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", fake)
    frame = load_corpus("wikitext", "retain")
    assert fake.calls == [("Salesforce/wikitext", "wikitext-2-raw-v1", "train")]
    assert frame["source"].tolist() == [
        "wikitext/wikitext-2-raw-v1:Alpha Beta",
        "wikitext/wikitext-2-raw-v1:Gamma",
    ]
    assert frame["text"].tolist()[1] == "Gamma is a letter .\n= = = Usage = = =\nUsed in physics ."
    assert len(load_corpus("wikitext", "retain", max_documents=1)) == 1


def _wmdp_rows(n: int) -> dict[str, list]:
    return {
        "question": [f"Hazard question {i}?" for i in range(n)],
        "choices": [[f"opt {i}{c}" for c in "abcd"] for i in range(n)],
        "answer": [i % 4 for i in range(n)],
    }


def test_wmdp_bio_loader(monkeypatch):
    rows = _wmdp_rows(5)
    # Duplicated row: hub benchmarks are kept exactly as lm-eval scores them.
    for column in rows:
        rows[column].append(rows[column][0])
    fake = FakeHub({("cais/wmdp", "wmdp-bio"): datasets.Dataset.from_dict(rows)})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    frame = load_questions("wmdp-bio", "forget")
    assert fake.calls == [("cais/wmdp", "wmdp-bio", "test")]
    assert len(frame) == 6
    assert set(frame["subject"]) == {"wmdp_bio"}
    assert frame["answer"].tolist() == [0, 1, 2, 3, 0, 0]
    assert frame["choices"][2] == ["opt 2a", "opt 2b", "opt 2c", "opt 2d"]


def test_wmdp_bio_loader_still_validates(monkeypatch):
    rows = _wmdp_rows(3)
    rows["answer"][2] = 7
    fake = FakeHub({("cais/wmdp", "wmdp-bio"): datasets.Dataset.from_dict(rows)})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    with pytest.raises(DataError, match=r"cais/wmdp \(wmdp-bio, test\): row 3: answer 7 is out"):
        load_questions("wmdp-bio")


# cais/mmlu stores `answer` as a ClassLabel (A..D); to_list gives its int index.
MMLU_FEATURES = datasets.Features(
    {
        "question": datasets.Value("string"),
        "subject": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.ClassLabel(names=["A", "B", "C", "D"]),
    }
)


def table(subject: str, n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "question": [f"{subject} q{i}" for i in range(n)],
            "subject": [subject] * n,
            "choices": [["w", "x", "y", "z"]] * n,
            "answer": [3 - i % 4 for i in range(n)],
        },
        features=MMLU_FEATURES,
    )


def test_mmlu_loader(monkeypatch):
    fake = FakeHub(
        {
            ("cais/mmlu", "human_aging"): table("human_aging", 2),
            ("cais/mmlu", "college_computer_science"): table("college_computer_science", 3),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", fake)
    frame = load_questions(
        "mmlu", "retain", mmlu_subjects=["human_aging", "college_computer_science"]
    )
    assert fake.calls == [
        ("cais/mmlu", "human_aging", "test"),
        ("cais/mmlu", "college_computer_science", "test"),
    ]
    assert frame["subject"].tolist() == ["human_aging"] * 2 + ["college_computer_science"] * 3
    assert frame["answer"].tolist() == [3, 2, 3, 2, 1]
    assert frame["question"][2] == "college_computer_science q0"


def test_mmlu_bio_loader_reads_the_papers_two_biology_subjects(monkeypatch):
    fake = FakeHub(
        {
            ("cais/mmlu", "college_biology"): table("college_biology", 2),
            ("cais/mmlu", "high_school_biology"): table("high_school_biology", 1),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", fake)
    # data.mmlu_subjects is the retain role's; mmlu-bio ignores it.
    frame = load_questions("mmlu-bio", "retain_near", mmlu_subjects=["human_aging"])
    assert fake.calls == [
        ("cais/mmlu", "college_biology", "test"),
        ("cais/mmlu", "high_school_biology", "test"),
    ]
    assert frame["subject"].tolist() == ["college_biology"] * 2 + ["high_school_biology"]
    assert frame["question"].tolist() == [
        "college_biology q0",
        "college_biology q1",
        "high_school_biology q0",
    ]
    assert frame["answer"].tolist() == [3, 2, 3]


def test_read_question_file_keeps_repeated_stems(tmp_path):
    row = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1, "subject": "s"}
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(row) for _ in range(2)) + "\n")
    frame = read_question_file(path, unique=False)
    assert len(frame) == 2 and frame["answer"].tolist() == [1, 1]
    path.write_text(json.dumps({**row, "answer": 7}) + "\n")
    with pytest.raises(DataError):
        read_question_file(path, unique=False)


def test_read_question_file_refuses_repeats_by_default(tmp_path):
    row = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1, "subject": "s"}
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(row) for _ in range(2)) + "\n")
    with pytest.raises(DataError, match="Q?"):
        read_question_file(path)
