"""The SAE for a cached layer through the train-sae stage, end to end on a tiny cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from sae_lens import SAE
from typer.testing import CliRunner

from pipeline.cli import app
from tests.saes.samples import D, gemma_scope_like


@pytest.fixture
def saes_dir(tmp_path, monkeypatch) -> Path:
    """Run the stage from `tmp_path`: a `sae.path` must lie in `inputs/saes/` (relative), the
    folder the stage depends on; timings land in `tmp_path/logs`, not the repo."""
    monkeypatch.chdir(tmp_path)
    folder = Path("inputs/saes")
    folder.mkdir(parents=True)
    return folder


def write_params(tmp_path: Path, cache_dir: Path, **sae: object) -> Path:
    params = {
        "seed": 0,
        "cache": {"dir": str(cache_dir)},
        "sae": {
            "layer": 1,
            "source": "train",
            "dir": str(tmp_path / "sae"),
            "metrics": str(tmp_path / "metrics" / "sae.json"),
            "train": {
                "d_sae": 64,
                "k": 4,
                "lr": 0.003,
                "batch_size": 64,
                "training_tokens": 64 * 60,
                "held_out_fraction": 0.25,
                "dead_steps": 10,
            },
            **sae,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_train_sae_stage_end_to_end(tmp_path, tiny_cache, saes_dir):
    runner = CliRunner()
    params = write_params(tmp_path, tiny_cache)
    result = runner.invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((tmp_path / "metrics" / "sae.json").read_text())
    assert metrics["source"] == "train" and metrics["eval_split"] == "held_out"
    # the default BatchTopK is saved (and used) as a JumpReLU SAE; the metrics name both
    assert metrics["architecture"] == "jumprelu" and metrics["trained_architecture"] == "batchtopk"
    assert metrics["d_sae"] == 64 and metrics["layer"] == 1
    assert 0 < metrics["n_tokens"] < metrics["n_train_tokens"]
    # k = 4 on average over the training tokens; held-out tokens come close
    assert 2 <= metrics["l0"] <= 6 and 0 <= metrics["dead_fraction"] <= 1
    assert metrics["explained_variance"] > 0.3
    sae = SAE.load_from_disk(tmp_path / "sae")
    assert sae.cfg.d_in == 32
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"

    # source: path copies that SAE to a new local dir and evaluates it on every cached token.
    shutil.copytree(tmp_path / "sae", saes_dir / "trained")
    params = write_params(
        tmp_path, tiny_cache, source="path", path=str(saes_dir / "trained"), dir=str(tmp_path / "c")
    )
    result = runner.invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    copied = json.loads((tmp_path / "metrics" / "sae.json").read_text())
    assert copied["source"] == "path" and copied["eval_split"] == "all_cached"
    assert copied["n_tokens"] == metrics["n_tokens"] + metrics["n_train_tokens"]
    assert (tmp_path / "c" / "sae_weights.safetensors").is_file()


def test_train_sae_stage_rejects_wrong_width(tmp_path, tiny_cache, saes_dir):
    gemma_scope_like(d_in=D).save_model(saes_dir / "wide")
    params = write_params(tmp_path, tiny_cache, source="path", path=str(saes_dir / "wide"))
    result = CliRunner().invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "hidden size is 32" in result.output
    assert str(saes_dir / "wide") in result.output
    assert not (tmp_path / "sae").exists()
