"""Bad input, sub-command by sub-command: one clean message (what, where, the fix), exit 2,
no traceback, and nothing written or changed.

Each row breaks one input of a small working project (tiny model, tiny SAE, prepared data,
a clamp config) and runs the sub-command a user would; the project's files are compared
byte for byte before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.steering import clamp_prime, write_clamp_yaml
from tests.data.samples import flat, write_jsonl
from tests.evaluation.helpers import questions, tiny_sae


def _records(frame) -> list[dict]:
    return [dict(r, choices=list(r["choices"])) for r in frame.to_dict("records")]


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_model_dir) -> Path:
    monkeypatch.chdir(tmp_path)
    inputs = Path("inputs/data")
    inputs.mkdir(parents=True)
    text = [{"text": f"Viruses {w} inside host cells and spread." * 3} for w in "abcdef"]
    write_jsonl(inputs / "forget_corpus.jsonl", text)
    write_jsonl(inputs / "retain_corpus.jsonl", [{"text": "Paris is in France." * 5}] * 4)
    write_jsonl(inputs / "forget_q.jsonl", _records(questions(6)))
    write_jsonl(inputs / "retain_q.jsonl", _records(questions(5, "geography", offset=2)))
    params = {
        "model": {"dir": str(tiny_model_dir)},
        "data": {
            "dir": "prepared",
            "forget_corpus": str(inputs / "forget_corpus.jsonl"),
            "retain_corpus": str(inputs / "retain_corpus.jsonl"),
            "forget_questions": str(inputs / "forget_q.jsonl"),
            "retain_questions": str(inputs / "retain_q.jsonl"),
            "retain_near_corpus": "none",
            "retain_near_questions": "none",
        },
        "cache": {"layers": [1], "seq_len": 16, "max_tokens": 64, "dir": "cache"},
        "sae": {"layer": 1, "dir": "sae"},
        "clamp": {"dir": "clamp", "mode": "clamp_prime"},
        "evaluate": {
            "batch_size": 8,
            "bootstrap": 20,
            "dir": "results",
            "baseline_metrics": "baseline.json",
            "steered_metrics": "steered.json",
        },
    }
    Path("params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["prepare-data"])
    assert result.exit_code == 0, result.output
    tiny_sae().save_model(tmp_path / "sae")
    write_clamp_yaml(clamp_prime(1, list(range(0, 64, 2)), -20.0), tmp_path / "clamp/clamp.yaml")
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file but the inputs a row breaks on purpose (and run-time logs)."""
    skip = ("inputs", "logs", "bad", "params.yaml")
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in skip
    }


def set_params(root: Path, key: str, value) -> None:
    data = yaml.safe_load((root / "params.yaml").read_text())
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(data))


def bad_file(root: Path, name: str, content: bytes | str) -> Path:
    path = root / "bad" / name
    path.parent.mkdir(exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path.relative_to(root)


def inputs_file(root: Path, name: str, content: bytes) -> str:
    path = root / "inputs/data" / name
    path.write_bytes(content)
    return str(path.relative_to(root))


@dataclass
class Row:
    name: str
    breaks: Callable[[Path], list[str]]  # breaks one input; returns the command line
    words: tuple[str, ...]  # in the message


def _repeated_choices(root: Path) -> list[str]:
    rows = _records(questions(6))
    rows[3]["choices"] = ["cells", "Bacteria", " bacteria ", "Paris"]
    write_jsonl(root / "inputs/data/forget_q.jsonl", rows)
    return ["prepare-data"]


def _question_file(content: bytes, suffix: str) -> Callable[[Path], list[str]]:
    def breaks(root: Path) -> list[str]:
        set_params(root, "data.forget_questions", inputs_file(root, f"q{suffix}", content))
        return ["prepare-data"]

    return breaks


def _csv_latent(root: Path) -> list[str]:
    header = "latent_idx,hook_action,refuse_id,clamp_value,steering_coefficient,sae_id,"
    csv = bad_file(
        root, "steering.csv", header + "sae_release,description\n12.7,clamp,,-20,0,,,x\n"
    )
    return ["clamp-config", "--csv", str(csv)]


def _no_baseline(root: Path) -> list[str]:
    return ["evaluate"]


def _pickled_sae(root: Path) -> list[str]:
    folder = root / "bad/sae"
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text((root / "sae/cfg.json").read_text())
    (folder / "sae_weights.pt").write_bytes(b"\x80\x04not really a pickle")
    return ["evaluate", "--baseline", "none", "--sae-dir", "bad/sae"]


def _clamp_yaml(content: str) -> Callable[[Path], list[str]]:
    def breaks(root: Path) -> list[str]:
        return ["generate", "--prompt", "Hi", "--clamp", str(bad_file(root, "c.yaml", content))]

    return breaks


def _exp_json(root: Path) -> list[str]:
    return ["compare", "--exp-json", str(bad_file(root, "exp.json", b"\xff\xfe\x00\x01"))]


def _params_value(key: str, value, command: list[str]) -> Callable[[Path], list[str]]:
    def breaks(root: Path) -> list[str]:
        set_params(root, key, value)
        return command

    return breaks


ROWS = [
    Row("repeated choices", _repeated_choices, ("forget_q.jsonl", "row 4", "repeat", "Fix:")),
    Row(
        "binary question file",
        _question_file(b"\xff\xfe\x00\x9cnot text\n", ".jsonl"),
        ("q.jsonl", "is not UTF-8", "Fix:"),
    ),
    Row(
        "corrupt parquet",
        _question_file(b"PAR1 this is not parquet", ".parquet"),
        ("q.parquet", "cannot be read", "Fix:"),
    ),
    Row(
        "CSV that does not parse",
        _question_file(b'question,choices\n"open quote,1\n', ".csv"),
        ("q.csv", "Fix:"),
    ),
    Row("steering CSV latent 12.7", _csv_latent, ("steering.csv", "row 2", "12.7", "integer")),
    Row("missing baseline", _no_baseline, ("baseline.json", "--baseline none")),
    Row("pickled SAE weights", _pickled_sae, ("bad/sae", "pickled weights", "safetensors")),
    Row(
        "clamp YAML that does not parse",
        _clamp_yaml("layer: [1\nrows: :"),
        ("c.yaml", "clamp config", "Fix:"),
    ),
    Row(
        "clamp YAML with an unknown row key",
        _clamp_yaml("layer: 1\nrows:\n- {latent_idx: 1, hook_action: clamp, colour: red}\n"),
        ("c.yaml", "rows[0]", "steering row"),
    ),
    Row("binary exp show JSON", _exp_json, ("exp.json", "not UTF-8")),
    Row(
        "layer beyond the model",
        _params_value("cache.layers", [40], ["cache"]),
        ("layer", "40", "decoder layers"),
    ),
    Row(
        "threshold_rate the library refuses",
        _params_value("select.threshold_rate", 1.0, ["select"]),
        ("select.threshold_rate", "params.yaml"),
    ),
    Row(
        "misspelt params key",
        _params_value("evaluate.batchsize", 8, ["report"]),
        ("evaluate.batchsize", "did you mean `evaluate.batch_size`"),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input_gets_one_clean_message_and_writes_nothing(project: Path, row: Row):
    before = snapshot(project)
    args = row.breaks(project)
    result = CliRunner().invoke(app, args)
    message = flat(result.output)
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    for words in row.words:
        assert words in message, (words, message)
    assert snapshot(project) == before


def test_a_program_error_keeps_its_traceback(project: Path, monkeypatch):
    """Only bad input is shortened: a bug inside a stage still shows where it is."""
    import pipeline.select as select_stage

    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(select_stage, "read_scores", broken)
    result = CliRunner().invoke(app, ["select"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_the_console_script_prints_no_traceback(project: Path):
    """The real entry point, as a user runs it."""
    import subprocess
    import sys

    set_params(project, "select.threshold_rate", 1.0)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "select"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "select.threshold_rate" in done.stderr
