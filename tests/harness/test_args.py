"""model_args checks of the `sae_unlearn` lm-eval model, and the `sae-unlearn lm-eval`
passthrough: help, and bad keys refused by name without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.errors import UserError
from sae_unlearn.harness.args import check_model_args

HFLM_LIKE = ("pretrained", "device", "dtype", "batch_size", "trust_remote_code")


def test_known_keys_pass():
    check_model_args(
        {"pretrained": "m", "sae": "s", "clamp": "c.yaml", "dtype": "float32"}, HFLM_LIKE
    )
    check_model_args({"pretrained": "m", "sae": None, "clamp": None}, HFLM_LIKE)


def test_unknown_key_is_named_with_the_closest_one():
    with pytest.raises(UserError, match="'sae_dir' is not an argument.*did you mean 'sae'"):
        check_model_args({"pretrained": "m", "sae_dir": "s"}, HFLM_LIKE)


def test_trust_remote_code_and_half_a_clamp_are_refused():
    with pytest.raises(UserError, match="trust_remote_code=True is refused"):
        check_model_args({"pretrained": "m", "trust_remote_code": True}, HFLM_LIKE)
    with pytest.raises(UserError, match="both sae=DIR and clamp=FILE"):
        check_model_args({"pretrained": "m", "sae": "s", "clamp": None}, HFLM_LIKE)


def test_help_shows_lm_evals_options_and_our_model():
    result = CliRunner().invoke(app, ["lm-eval", "--help"])
    assert result.exit_code == 0, result.output
    assert "--model sae_unlearn" in result.output
    assert "--model_args" in result.output and "--include_path" in result.output


def run_lm_eval(parity_dir, model_args: str) -> subprocess.CompletedProcess:
    """`sae-unlearn lm-eval` in its own process, as a user runs it (lm-eval sets up logging
    on the streams of the process it runs in)."""
    pytest.importorskip("lm_eval")
    args = ["lm-eval", "--model", "sae_unlearn", "--tasks", "tiny_cloze", "--limit", "1"]
    args += ["--include_path", str(parity_dir / "tasks"), "--model_args", model_args]
    command = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_bad_model_args_key_is_refused_without_traceback(parity_dir, tiny_model_dir):
    result = run_lm_eval(parity_dir, f"pretrained={tiny_model_dir},sae_dir={parity_dir / 'sae'}")
    assert result.returncode == 2, result.stderr
    assert "Error: model_args key 'sae_dir'" in result.stderr
    assert "did you mean 'sae'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_clamp_file_is_refused_without_traceback(parity_dir, tiny_model_dir):
    args = f"pretrained={tiny_model_dir},sae={parity_dir / 'sae'},clamp=nowhere.yaml"
    result = run_lm_eval(parity_dir, args)
    assert result.returncode == 2, result.stderr
    assert "nowhere.yaml" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
