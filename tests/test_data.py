"""prepare-data: validation, file formats, hub loaders (monkeypatched), the stage, embedded data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn import data as D
from sae_unlearn.data import DataConfig, DataError

QUESTIONS = [
    {
        "question": "What coats a virus?",
        "choices": ["capsid", "nucleus", "cell wall", "ribosome"],
        "answer": 0,
        "subject": "virology",
    },
    {
        "question": "Which cells make antibodies?",
        "choices": ["red cells", "B cells", "platelets", "neurons"],
        "answer": 1,
        "subject": "immunology",
    },
    {
        "question": "Which virus causes AIDS?",
        "choices": ["HIV", "smallpox", "polio", 'rabies, "quoted"'],
        "answer": 3,
        "subject": "virology",
    },
]
DOCS = [
    {"title": "Viruses", "text": "Viruses replicate inside cells.\nThey have a capsid."},
    {"title": "Antibodies", "text": "B cells make antibodies, which bind antigens."},
    {"title": "Fever", "text": "Fever is a raised body temperature."},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_any(path: Path, rows: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        return write_jsonl(path, rows)
    if suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    elif suffix == ".csv":
        frame = pd.DataFrame(rows)
        if "choices" in frame:
            frame["choices"] = [json.dumps(c) for c in frame["choices"]]
        frame.to_csv(path, index=False)
    elif suffix == ".txt":
        path.write_text("\n\n".join(r["text"] for r in rows) + "\n", encoding="utf-8")
    return path


def flat(text: str) -> str:
    # Rich wraps typer errors in a box; compare the words only.
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


# --------------------------------------------------------------------------- bad questions


def _q(**changes) -> list[dict]:
    rows = [dict(r) for r in QUESTIONS]
    rows[1].update(changes)  # the bad row is always data row 2
    return rows


BAD_QUESTIONS = {
    "three choices": (_q(choices=["a", "b", "c"]), "row 2: 3 choices", "exactly 4"),
    "five choices": (_q(choices=list("abcde")), "row 2: 5 choices", "exactly 4"),
    "choices not a list": (_q(choices="a|b|c|d"), "row 2: choices is str", "list of 4 strings"),
    "answer too big": (_q(answer=4), "row 2: answer 4 is out of range", "0..3"),
    "answer negative": (_q(answer=-1), "row 2: answer -1 is out of range", "0..3"),
    "answer letter": (_q(answer="B"), "row 2: answer 'B' is not an int", "not a letter"),
    "answer float": (_q(answer=1.5), "row 2: answer 1.5 is not an int", "0-based index"),
    "answer bool": (_q(answer=True), "row 2: answer True is not an int", "0-based index"),
    "empty question": (_q(question="   "), "row 2: empty or non-text question", "question text"),
    "empty choice": (_q(choices=["a", "", "c", "d"]), "row 2: choice 1 is empty", "non-empty"),
    "null choice": (_q(choices=["a", "b", None, "d"]), "row 2: choice 2 is empty", "non-empty"),
    "empty subject": (_q(subject=""), "row 2: empty or non-text subject", '"subject"'),
    "null answer": (_q(answer=None), "row 2: answer None is not an int", "0-based index"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUESTIONS))
def test_bad_question_row_names_file_row_and_fix(tmp_path, case):
    rows, problem, fix = BAD_QUESTIONS[case]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError) as err:
        D.load_questions(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "Fix:" in message and fix in message.split("Fix:")[1]


def test_missing_column_is_named(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "subject"} for r in QUESTIONS]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError, match=r"missing column\(s\) \['subject'\]") as err:
        D.load_questions(str(path))
    assert str(path) in str(err.value) and 'Fix: every row needs "question"' in str(err.value)


def test_key_missing_in_one_row_points_at_that_row(tmp_path):
    rows = [dict(r) for r in QUESTIONS]
    del rows[2]["answer"]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError, match=r": row 3: answer nan is not an int"):
        D.load_questions(str(path))


def test_duplicate_question_names_both_rows(tmp_path):
    rows = [*QUESTIONS, dict(QUESTIONS[0])]
    path = write_jsonl(tmp_path / "qs.jsonl", rows)
    with pytest.raises(DataError) as err:
        D.load_questions(str(path))
    assert f"{path}: row 4: duplicate of row 1" in str(err.value)
    assert "Fix: delete one of the two rows" in str(err.value)


def test_same_stem_with_other_choices_is_not_a_duplicate(tmp_path):
    # Benchmarks reuse stems like "Which is true?" with different options.
    other = dict(QUESTIONS[0], choices=["envelope", "spike", "capsule", "pilus"])
    path = write_jsonl(tmp_path / "qs.jsonl", [*QUESTIONS, other])
    assert len(D.load_questions(str(path))) == 4


def test_csv_choices_must_be_a_json_list(tmp_path):
    path = tmp_path / "qs.csv"
    pd.DataFrame([{**QUESTIONS[0], "choices": "a; b; c; d"}]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        D.load_questions(str(path))
    assert f"{path}: row 1: choices is str 'a; b; c; d'" in str(err.value)
    assert "in CSV, a JSON list" in str(err.value)


def test_csv_letter_answer_is_refused(tmp_path):
    path = write_any(tmp_path / "qs.csv", _q(answer="C"))
    with pytest.raises(DataError, match=r"qs.csv: row 2: answer 'C' is not an int"):
        D.load_questions(str(path))


def test_invalid_jsonl_line_is_named(tmp_path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qs.jsonl: line 2: not valid JSON .*Fix: write one JSON"):
        D.load_questions(str(path))


def test_empty_file_unknown_suffix_and_missing_file(tmp_path):
    empty = tmp_path / "qs.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qs.jsonl: has no rows. Fix: add at least one row"):
        D.load_questions(str(empty))
    with pytest.raises(DataError, match=r"unsupported file type '.xlsx'. Fix: use one of"):
        D.load_questions(str(tmp_path / "qs.xlsx"))
    with pytest.raises(DataError, match=r"nope.jsonl: no such file. Fix: check the path"):
        D.load_questions(str(tmp_path / "nope.jsonl"))


# --------------------------------------------------------------------------- bad corpora


def test_bad_corpus_rows_name_file_row_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [DOCS[0], {"title": "x", "text": " \n "}])
    with pytest.raises(DataError) as err:
        D.load_corpus(str(path))
    assert str(err.value).startswith(f"{path}: row 2: empty or non-text document")
    assert 'Fix: put the document in "text" or delete the row' in str(err.value)

    path = write_jsonl(tmp_path / "c2.jsonl", [DOCS[0], DOCS[1], {"text": "ok", "title": 7}])
    with pytest.raises(DataError, match=r"c2.jsonl: row 3: title is int 7, not a string. Fix:"):
        D.load_corpus(str(path))

    path = write_jsonl(tmp_path / "c3.jsonl", [{"body": "no text column"}])
    with pytest.raises(DataError, match=r"c3.jsonl: missing column\(s\) \['text'\].*Fix:"):
        D.load_corpus(str(path))

    with pytest.raises(DataError, match=r"max_documents is 0. Fix: use a positive int"):
        D.load_corpus(str(write_jsonl(tmp_path / "c4.jsonl", DOCS)), max_documents=0)


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_question_formats_round_trip(tmp_path, suffix):
    path = write_any(tmp_path / f"qs{suffix}", QUESTIONS)
    frame = D.load_questions(str(path))
    assert list(frame.columns) == ["question", "choices", "answer", "subject"]
    assert frame.to_dict("records") == QUESTIONS
    assert frame["answer"].dtype == "int64"


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_corpus_formats_round_trip(tmp_path, suffix):
    path = write_any(tmp_path / f"c{suffix}", DOCS)
    frame = D.load_corpus(str(path))
    assert frame["text"].tolist() == [d["text"] for d in DOCS]
    assert frame["source"].tolist() == [f"c{suffix}:{d['title']}" for d in DOCS]


def test_txt_corpus_splits_on_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(
        "First doc\nstill first.\n\n\n  \nSecond doc.\r\n\r\nThird.\n", encoding="utf-8"
    )
    frame = D.load_corpus(str(path))
    assert frame["text"].tolist() == ["First doc\nstill first.", "Second doc.", "Third."]
    assert frame["source"].tolist() == ["c.txt:1", "c.txt:2", "c.txt:3"]


def test_explicit_source_column_is_kept_and_cap_keeps_the_first_documents(tmp_path):
    rows = [{"text": d["text"], "source": f"book-{i}"} for i, d in enumerate(DOCS)]
    frame = D.load_corpus(str(write_jsonl(tmp_path / "c.jsonl", rows)), max_documents=2)
    assert frame.to_dict("records") == [
        {"text": DOCS[0]["text"], "source": "book-0"},
        {"text": DOCS[1]["text"], "source": "book-1"},
    ]


def test_prepared_questions_are_valid_input_again(tmp_path):
    out = tmp_path / "prep.parquet"
    D.normalise_questions(pd.DataFrame(QUESTIONS)).to_parquet(out, index=False)
    assert D.load_questions(str(out)).to_dict("records") == QUESTIONS


# --------------------------------------------------------------------------- hub loaders


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
    assert D.split_wikitext(WIKITEXT_LINES) == [
        {
            "title": "Alpha Beta",
            "text": "Alpha Beta is a band .\n= = History = =\nIt formed in 1990 @-@ ish .",
        },
        {"title": "Gamma", "text": "Gamma is a letter .\n= = = Usage = = =\nUsed in physics ."},
    ]
    # Text before the first heading is kept as an untitled document; a heading with no body
    # produces nothing.
    assert D.split_wikitext(["intro line \n", " = Empty = \n", ""]) == [
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
    frame = D.load_corpus("wikitext", "retain")
    assert fake.calls == [("Salesforce/wikitext", "wikitext-2-raw-v1", "train")]
    assert frame["source"].tolist() == [
        "wikitext/wikitext-2-raw-v1:Alpha Beta",
        "wikitext/wikitext-2-raw-v1:Gamma",
    ]
    assert frame["text"].tolist()[1] == "Gamma is a letter .\n= = = Usage = = =\nUsed in physics ."
    assert len(D.load_corpus("wikitext", "retain", max_documents=1)) == 1


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
    frame = D.load_questions("wmdp-bio", "forget")
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
        D.load_questions("wmdp-bio")


def test_mmlu_loader(monkeypatch):
    # cais/mmlu stores `answer` as a ClassLabel (A..D); to_list gives its int index.
    features = datasets.Features(
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
            features=features,
        )

    fake = FakeHub(
        {
            ("cais/mmlu", "human_aging"): table("human_aging", 2),
            ("cais/mmlu", "college_computer_science"): table("college_computer_science", 3),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", fake)
    frame = D.load_questions(
        "mmlu", "retain", mmlu_subjects=["human_aging", "college_computer_science"]
    )
    assert fake.calls == [
        ("cais/mmlu", "human_aging", "test"),
        ("cais/mmlu", "college_computer_science", "test"),
    ]
    assert frame["subject"].tolist() == ["human_aging"] * 2 + ["college_computer_science"] * 3
    assert frame["answer"].tolist() == [3, 2, 3, 2, 1]
    assert frame["question"][2] == "college_computer_science q0"


# --------------------------------------------------------------------------- prepare_data


def _inputs(tmp_path: Path) -> dict[str, str]:
    retain_q = [
        {
            "question": "Capital of France?",
            "choices": ["Paris", "Rome", "Oslo", "Bern"],
            "answer": 0,
            "subject": "geography",
        },
        {
            "question": "Who wrote Hamlet?",
            "choices": ["Austen", "Shakespeare", "Twain", "Woolf"],
            "answer": 1,
            "subject": "literature",
        },
    ]
    return {
        "forget_corpus": str(write_jsonl(tmp_path / "forget.jsonl", DOCS)),
        "retain_corpus": str(
            write_any(
                tmp_path / "retain.txt",
                [
                    {"text": "Paris is the capital of France."},
                    {"text": "Hamlet is a play by Shakespeare."},
                ],
            )
        ),
        "forget_questions": str(write_jsonl(tmp_path / "fq.jsonl", QUESTIONS)),
        "retain_questions": str(write_any(tmp_path / "rq.csv", retain_q)),
    }


def test_prepare_data_writes_normalised_parquet(tmp_path):
    out = tmp_path / "prepared"
    summary = D.prepare_data(DataConfig(**_inputs(tmp_path), max_documents=2), out)
    assert sorted(p.name for p in out.iterdir()) == [
        "forget_corpus.parquet",
        "forget_questions.parquet",
        "retain_corpus.parquet",
        "retain_questions.parquet",
    ]
    assert summary.documents == {"forget": 2, "retain": 2}
    assert summary.words == {"forget": 8 + 7, "retain": 6 + 6}
    assert summary.questions == {
        "forget": {"immunology": 1, "virology": 2},
        "retain": {"geography": 1, "literature": 1},
    }
    schema = pq.read_schema(out / "forget_questions.parquet")
    assert str(schema.field("choices").type) == "list<element: string>"
    assert str(schema.field("answer").type) == "int64"
    assert schema.names == ["question", "choices", "answer", "subject"]
    assert pq.read_schema(out / "retain_corpus.parquet").names == ["text", "source"]
    corpus = pd.read_parquet(out / "forget_corpus.parquet")
    assert corpus["source"].tolist() == ["forget.jsonl:Viruses", "forget.jsonl:Antibodies"]
    qs = pd.read_parquet(out / "retain_questions.parquet")
    assert qs["choices"].map(list).tolist()[1] == ["Austen", "Shakespeare", "Twain", "Woolf"]
    assert summary.lines()[0] == "forget corpus: 2 documents, 15 words"
    assert summary.lines()[3] == "retain questions: 2 (geography 1, literature 1)"


def test_prepare_data_is_deterministic_and_a_bad_input_writes_nothing(tmp_path):
    inputs = _inputs(tmp_path)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    D.prepare_data(DataConfig(**inputs), out_a)
    D.prepare_data(DataConfig(**inputs), out_b)
    for path in out_a.iterdir():
        assert path.read_bytes() == (out_b / path.name).read_bytes()

    before = {p.name: p.read_bytes() for p in out_a.iterdir()}
    bad = write_jsonl(tmp_path / "bad.jsonl", _q(answer=9))
    with pytest.raises(DataError, match="row 2: answer 9"):
        D.prepare_data(DataConfig(**{**inputs, "retain_questions": str(bad)}), out_a)
    assert {p.name: p.read_bytes() for p in out_a.iterdir()} == before


# --------------------------------------------------------------------------- the stage


def _params(tmp_path: Path, inputs: dict[str, str], **overrides) -> Path:
    data = {"dir": str(tmp_path / "prepared"), **inputs, "max_documents": None, **overrides}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data}), encoding="utf-8")
    return path


def test_stage_reads_params_and_prints_counts(tmp_path):
    params = _params(tmp_path, _inputs(tmp_path))
    result = CliRunner().invoke(app, ["prepare-data", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "forget corpus: 3 documents, 21 words" in result.output
    assert "retain corpus: 2 documents, 12 words" in result.output
    assert "forget questions: 3 (immunology 1, virology 2)" in result.output
    assert "retain questions: 2 (geography 1, literature 1)" in result.output
    assert len(pd.read_parquet(tmp_path / "prepared" / "forget_corpus.parquet")) == 3


def test_stage_options_override_params(tmp_path):
    params = _params(tmp_path, _inputs(tmp_path))
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(
        app,
        [
            "prepare-data",
            "--params",
            str(params),
            "--out-dir",
            str(out),
            "--max-documents",
            "1",
            "--retain-questions",
            str(tmp_path / "fq.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "forget corpus: 1 documents" in result.output
    assert "retain questions: 3 (immunology 1, virology 2)" in result.output
    assert (out / "retain_questions.parquet").exists()
    assert not (tmp_path / "prepared").exists()


def test_stage_reports_bad_input_as_usage_error(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", _q(choices=["a", "b"]))
    params = _params(tmp_path, {**_inputs(tmp_path), "forget_questions": str(bad)})
    result = CliRunner().invoke(app, ["prepare-data", "--params", str(params)])
    assert result.exit_code == 2
    message = flat(result.output)
    assert "bad.jsonl: row 2: 2 choices, expected exactly 4" in message
    assert "Fix: give exactly 4 answer options" in message
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------- embedded data


def test_build_embedded_is_sorted_and_deterministic(tmp_path):
    src = tmp_path / "src"
    for role in D.ROLES:
        (src / "corpus_src" / role).mkdir(parents=True)
        (src / "questions_src").mkdir(exist_ok=True)
    (src / "corpus_src/forget/b_01_second_topic.txt").write_text("Two.\n", encoding="utf-8")
    (src / "corpus_src/forget/a_02_first_topic.txt").write_text(
        "One  \r\n\r\n\r\n\r\nstill one.\n", encoding="utf-8"
    )
    write_jsonl(src / "questions_src/forget_questions.jsonl", QUESTIONS)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert D.build_embedded(src, out_a) == {"forget_corpus": 2, "forget_questions": 3}
    D.build_embedded(src, out_b)
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
    frame = D.load_questions("embedded", "forget", embedded_dir=out_a)
    assert frame.to_dict("records") == qs


def test_build_embedded_names_the_bad_source(tmp_path):
    src = tmp_path / "src"
    (src / "questions_src").mkdir(parents=True)
    qpath = write_jsonl(src / "questions_src/retain_questions.jsonl", _q(answer="two"))
    with pytest.raises(DataError, match=re.escape(f"{qpath}: row 2: answer 'two' is not an int")):
        D.build_embedded(src, tmp_path / "out")
    (src / "corpus_src/forget").mkdir(parents=True)
    empty = src / "corpus_src/forget/a_01_x.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{empty}: empty document")):
        D.build_embedded(src, tmp_path / "out")


def test_missing_embedded_file_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match=r"forget_corpus.jsonl: embedded corpus file is missing"):
        D.load_corpus("embedded", "forget", embedded_dir=tmp_path)


EMBEDDED_FILES = [
    D.EMBEDDED_DIR / f"{role}_{kind}.jsonl" for role in D.ROLES for kind in ("corpus", "questions")
]


@pytest.mark.skipif(
    not all(p.is_file() for p in EMBEDDED_FILES),
    reason="embedded data not built yet: run `python scripts/build_embedded_data.py`",
)
def test_committed_embedded_data_is_valid():
    questions = {role: D.load_questions("embedded", role) for role in D.ROLES}
    corpora = {role: D.load_corpus("embedded", role) for role in D.ROLES}
    for role in D.ROLES:
        assert len(corpora[role]) >= 10 and len(questions[role]) >= 20
        assert corpora[role]["source"].is_unique
    # The forget and retain sets must not share questions, or unlearning scores leak.
    assert not set(questions["forget"]["question"]) & set(questions["retain"]["question"])


@pytest.mark.skipif(
    not all(p.is_file() for p in EMBEDDED_FILES),
    reason="embedded data not built yet: run `python scripts/build_embedded_data.py`",
)
def test_committed_embedded_data_matches_its_sources(tmp_path):
    # Editing a source without rebuilding would silently evaluate on the old data.
    src = D.EMBEDDED_DIR
    if (src / "corpus_src").is_dir() or (src / "questions_src").is_dir():
        D.build_embedded(src, tmp_path)
        for path in EMBEDDED_FILES:
            rebuilt = tmp_path / path.name
            if rebuilt.exists():
                assert rebuilt.read_bytes() == path.read_bytes(), (
                    f"{path} is stale: run `python scripts/build_embedded_data.py`"
                )
