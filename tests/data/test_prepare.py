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
    }


def test_prepare_data_writes_normalised_parquet(tmp_path):
    out = tmp_path / "prepared"
    summary = prepare_data(DataConfig(**_inputs(tmp_path), max_documents=2), out)
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
    prepare_data(DataConfig(**inputs), out_a)
    prepare_data(DataConfig(**inputs), out_b)
    for path in out_a.iterdir():
        assert path.read_bytes() == (out_b / path.name).read_bytes()

    before = {p.name: p.read_bytes() for p in out_a.iterdir()}
    bad = write_jsonl(tmp_path / "bad.jsonl", with_bad_row(answer=9))
    with pytest.raises(DataError, match="row 2: answer 9"):
        prepare_data(DataConfig(**{**inputs, "retain_questions": str(bad)}), out_a)
    assert {p.name: p.read_bytes() for p in out_a.iterdir()} == before


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
    assert len(pd.read_parquet(tmp_path / "prepared" / "forget_corpus.parquet")) == 3


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
    assert (out / "retain_questions.parquet").exists()
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
