"""prepare_data and the prepare-data stage: normalised parquet, counts, all-or-nothing writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.data.prepare import DataConfig, prepare_data
from sae_unlearn.data.schema import DataError
from tests.data.samples import DOCS, QUESTIONS, flat, with_bad_row, write_any, write_jsonl


def _inputs(folder: Path) -> dict[str, str]:
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
        "forget_corpus": str(write_jsonl(folder / "forget.jsonl", DOCS)),
        "retain_corpus": str(
            write_any(
                folder / "retain.txt",
                [
                    {"text": "Paris is the capital of France."},
                    {"text": "Hamlet is a play by Shakespeare."},
                ],
            )
        ),
        "forget_questions": str(write_jsonl(folder / "fq.jsonl", QUESTIONS)),
        "retain_questions": str(write_any(folder / "rq.csv", retain_q)),
        # the two-role run; tests of the third role name it
        "retain_near_corpus": "none",
        "retain_near_questions": "none",
    }


def test_prepare_data_writes_normalised_parquet(tmp_path):
    out = tmp_path / "prepared"
    summary = prepare_data(DataConfig(**_inputs(tmp_path), max_documents=2), out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        "corpora/forget_corpus.parquet",
        "corpora/retain_corpus.parquet",
        "questions/forget_questions.parquet",
        "questions/retain_questions.parquet",
    ]
    assert summary.documents == {"forget": 2, "retain": 2}
    assert summary.words == {"forget": 8 + 7, "retain": 6 + 6}
    assert summary.questions == {
        "forget": {"immunology": 1, "virology": 2},
        "retain": {"geography": 1, "literature": 1},
    }
    schema = pq.read_schema(out / "questions/forget_questions.parquet")
    assert str(schema.field("choices").type) == "list<element: string>"
    assert str(schema.field("answer").type) == "int64"
    assert schema.names == ["question", "choices", "answer", "subject"]
    assert pq.read_schema(out / "corpora/retain_corpus.parquet").names == ["text", "source"]
    corpus = pd.read_parquet(out / "corpora/forget_corpus.parquet")
    assert corpus["source"].tolist() == ["forget.jsonl:Viruses", "forget.jsonl:Antibodies"]
    qs = pd.read_parquet(out / "questions/retain_questions.parquet")
    assert qs["choices"].map(list).tolist()[1] == ["Austen", "Shakespeare", "Twain", "Woolf"]
    assert summary.lines()[0] == "forget corpus: 2 documents, 15 words"
    assert summary.lines()[3] == "retain questions: 2 (geography 1, literature 1)"


def test_prepare_data_is_deterministic_and_a_bad_input_writes_nothing(tmp_path):
    inputs = _inputs(tmp_path)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    prepare_data(DataConfig(**inputs), out_a)
    prepare_data(DataConfig(**inputs), out_b)
    files = sorted(p.relative_to(out_a) for p in out_a.rglob("*.parquet"))
    assert len(files) == 4
    for name in files:
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()

    before = {name: (out_a / name).read_bytes() for name in files}
    bad = write_jsonl(tmp_path / "bad.jsonl", with_bad_row(answer=9))
    with pytest.raises(DataError, match="row 2: answer 9"):
        prepare_data(DataConfig(**{**inputs, "retain_questions": str(bad)}), out_a)
    assert {p.relative_to(out_a): p.read_bytes() for p in out_a.rglob("*.parquet")} == before


@pytest.fixture
def inputs_dir(tmp_path, monkeypatch) -> Path:
    """Run the stage from `tmp_path`, with its local inputs in `inputs/data/` (relative), the
    folder params.yaml requires them in; timings land in `tmp_path/logs`, not the repo."""
    monkeypatch.chdir(tmp_path)
    folder = Path("inputs/data")
    folder.mkdir(parents=True)
    return folder


def _params(tmp_path: Path, inputs: dict[str, str], **overrides) -> Path:
    data = {"dir": str(tmp_path / "prepared"), **inputs, "max_documents": None, **overrides}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data}), encoding="utf-8")
    return path


def test_stage_reads_params_and_prints_counts(tmp_path, inputs_dir):
    params = _params(tmp_path, _inputs(inputs_dir))
    result = CliRunner().invoke(app, ["prepare-data", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "forget corpus: 3 documents, 21 words" in result.output
    assert "retain corpus: 2 documents, 12 words" in result.output
    assert "forget questions: 3 (immunology 1, virology 2)" in result.output
    assert "retain questions: 2 (geography 1, literature 1)" in result.output
    assert len(pd.read_parquet(tmp_path / "prepared" / "corpora/forget_corpus.parquet")) == 3


def test_stage_options_override_params(tmp_path, inputs_dir):
    params = _params(tmp_path, _inputs(inputs_dir))
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
            str(inputs_dir / "fq.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "forget corpus: 1 documents" in result.output
    assert "retain questions: 3 (immunology 1, virology 2)" in result.output
    assert (out / "questions/retain_questions.parquet").exists()
    assert not (tmp_path / "prepared").exists()


def test_stage_reports_bad_input_as_usage_error(tmp_path, inputs_dir):
    bad = write_jsonl(inputs_dir / "bad.jsonl", with_bad_row(choices=["a", "b"]))
    params = _params(tmp_path, {**_inputs(inputs_dir), "forget_questions": str(bad)})
    result = CliRunner().invoke(app, ["prepare-data", "--params", str(params)])
    assert result.exit_code == 2
    message = flat(result.output)
    assert "bad.jsonl: row 2: 2 choices, expected exactly 4" in message
    assert "Fix: give exactly 4 answer options" in message
    assert not (tmp_path / "prepared").exists()


NEAR_QUESTIONS = [
    {
        "question": "Which organ pumps blood?",
        "choices": ["heart", "liver", "lung", "kidney"],
        "answer": 0,
        "subject": "anatomy",
    },
    {
        "question": "What do plants make in photosynthesis?",
        "choices": ["salt", "glucose", "iron", "protein"],
        "answer": 1,
        "subject": "botany",
    },
]
NEAR_DOCS = [{"text": "The heart pumps blood through arteries and veins."}]


def test_retain_near_written_when_set_and_removed_when_none(tmp_path):
    inputs = _inputs(tmp_path)
    near = {
        "retain_near_corpus": str(write_jsonl(tmp_path / "near.jsonl", NEAR_DOCS)),
        "retain_near_questions": str(write_any(tmp_path / "nq.csv", NEAR_QUESTIONS)),
    }
    out = tmp_path / "prepared"
    summary = prepare_data(DataConfig(**{**inputs, **near}), out)
    assert summary.documents == {"forget": 3, "retain": 2, "retain_near": 1}
    assert summary.words["retain_near"] == 8
    assert summary.questions["retain_near"] == {"anatomy": 1, "botany": 1}
    assert summary.lines()[2] == "retain_near corpus: 1 documents, 8 words"
    assert summary.lines()[-1] == "retain_near questions: 2 (anatomy 1, botany 1)"
    qs = pd.read_parquet(out / "questions/retain_near_questions.parquet")
    assert qs["answer"].tolist() == [0, 1] and qs["subject"].tolist() == ["anatomy", "botany"]
    assert pd.read_parquet(out / "corpora/retain_near_corpus.parquet")["source"].tolist() == [
        "near.jsonl:1"
    ]

    # `none` is the two-role run: no retain_near file, a stale one removed.
    summary = prepare_data(DataConfig(**inputs), out)
    assert list(summary.documents) == ["forget", "retain"]
    assert list(summary.questions) == ["forget", "retain"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        "corpora/forget_corpus.parquet",
        "corpora/retain_corpus.parquet",
        "questions/forget_questions.parquet",
        "questions/retain_questions.parquet",
    ]


def test_retain_near_questions_alone_write_no_corpus(tmp_path):
    path = write_jsonl(tmp_path / "nq.jsonl", NEAR_QUESTIONS)
    out = tmp_path / "prepared"
    summary = prepare_data(
        DataConfig(**{**_inputs(tmp_path), "retain_near_questions": str(path)}), out
    )
    assert "retain_near" not in summary.documents and "retain_near" in summary.questions
    assert (out / "questions/retain_near_questions.parquet").exists()
    assert not (out / "corpora/retain_near_corpus.parquet").exists()


def test_retain_near_file_with_the_wrong_schema_is_refused(tmp_path):
    # An answer given as a letter in row 2: named with the file, the row and the fix, and
    # nothing is written (every input is validated before the first write).
    rows = [dict(r) for r in NEAR_QUESTIONS]
    rows[1]["answer"] = "B"
    bad = write_jsonl(tmp_path / "near_bad.jsonl", rows)
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(**{**_inputs(tmp_path), "retain_near_questions": str(bad)}), out)
    assert str(err.value) == (
        f"{bad}: row 2: answer 'B' is not an int. Fix: use the 0-based index of the correct "
        "choice (0, 1, 2 or 3), not a letter or text."
    )
    no_subject = write_jsonl(
        tmp_path / "near_cols.jsonl", [{k: v for k, v in r.items() if k != "subject"} for r in rows]
    )
    with pytest.raises(DataError, match=r"near_cols.jsonl: missing column\(s\) \['subject'\]"):
        prepare_data(
            DataConfig(**{**_inputs(tmp_path), "retain_near_questions": str(no_subject)}), out
        )
    assert not out.exists()


def test_required_role_cannot_be_none(tmp_path):
    with pytest.raises(DataError, match=r"data.retain_questions is `none`, but the retain role"):
        prepare_data(DataConfig(**{**_inputs(tmp_path), "retain_questions": "none"}), tmp_path)


def test_stage_takes_the_retain_near_option(tmp_path, inputs_dir):
    params = _params(tmp_path, _inputs(inputs_dir))
    near = write_jsonl(inputs_dir / "nq.jsonl", NEAR_QUESTIONS)
    result = CliRunner().invoke(
        app, ["prepare-data", "--params", str(params), "--retain-near-questions", str(near)]
    )
    assert result.exit_code == 0, result.output
    assert "retain_near questions: 2 (anatomy 1, botany 1)" in result.output
    assert (tmp_path / "prepared/questions/retain_near_questions.parquet").exists()
