"""The clamp-config stage builds the gate from `clamp.gate*`, calibrating tau on the cache."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.params import ClampParams
from sae_unlearn.steering import GATES, Gate, read_clamp_yaml
from tests.selection.test_share import GATED, LAYER, THRESHOLDS, identity_sae, write_cache


def stage_inputs(tmp_path: Path, **clamp) -> Path:
    identity_sae().save_model(tmp_path / "sae")
    # As in tests/selection/test_share: chunk shares 0.5, 0.5 (retain) and 1.0 (retain_near).
    write_cache(tmp_path / "cache" / "retain", [[1, 0, 0, 1, 1], [0, 0, 1, 0]])
    write_cache(tmp_path / "cache" / "retain_near", [[1, 1, 1]])
    (tmp_path / "select").mkdir()
    selected = pd.DataFrame({"rank": [1, 2], "latent": GATED, "threshold": THRESHOLDS})
    selected.to_parquet(tmp_path / "select" / "selected.parquet")
    params = {
        "cache": {"dir": str(tmp_path / "cache")},
        "sae": {"layer": LAYER, "dir": str(tmp_path / "sae")},
        "select": {"dir": str(tmp_path / "select")},
        "clamp": {"mode": "gated_clamp", "dir": str(tmp_path / "clamp"), **clamp},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run(params: Path):
    return CliRunner().invoke(app, ["clamp-config", "--params", str(params)])


def test_the_params_offer_the_gates_the_hook_knows():
    assert get_args(ClampParams.model_fields["gate"].annotation) == GATES


def test_token_share_tau_calibrated_on_both_retain_caches(tmp_path):
    result = run(stage_inputs(tmp_path, gate="token_share", gate_chunk=4, gate_quantile=0.95))
    assert result.exit_code == 0, result.output
    cfg = read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml")
    assert cfg.gate.kind == "token_share" and abs(cfg.gate.tau - 0.95) < 1e-12
    assert "token_share tau = 0.95 (from retain, retain_near)" in result.output
    assert not (tmp_path / "clamp" / "steering.csv").exists()
    # Without the retain_near cache, retain alone: shares 0.5, 0.5.
    shutil.rmtree(tmp_path / "cache" / "retain_near")
    assert run(tmp_path / "params.yaml").exit_code == 0
    assert read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml").gate.tau == 0.5


def test_window_and_latched_gates(tmp_path):
    assert run(stage_inputs(tmp_path, gate="window", gate_window=7)).exit_code == 0
    assert read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml").gate == Gate("window", window=7)
    params = tmp_path / "params.yaml"
    data = yaml.safe_load(params.read_text())
    del data["clamp"]["gate"], data["clamp"]["gate_window"]
    params.write_text(yaml.safe_dump(data))
    assert run(params).exit_code == 0  # the default: the window gate tuned on dev, 6 tokens
    assert read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml").gate == Gate("window", window=6)
    data["clamp"]["gate"] = "latched"
    params.write_text(yaml.safe_dump(data))
    assert run(params).exit_code == 0
    assert read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml").gate == Gate()
    assert (tmp_path / "clamp" / "steering.csv").exists()


def test_bad_gate_input_named_without_a_traceback(tmp_path):
    params = stage_inputs(tmp_path, gate="token_share", gate_chunk=4, gate_quantile=1.0)
    result = run(params)  # the retain_near chunk is all triggers: tau would be 1
    assert result.exit_code != 0 and "lower clamp.gate_quantile" in result.output
    assert "Traceback" not in result.output
    shutil.rmtree(tmp_path / "cache" / "retain")
    result = run(params)
    assert result.exit_code != 0 and "run `sae-unlearn cache` first" in result.output
    data = yaml.safe_load(params.read_text())
    data["clamp"].update(gate="sliding")
    params.write_text(yaml.safe_dump(data))
    result = run(params)
    assert result.exit_code != 0 and "clamp.gate" in result.output
    data["clamp"].update(gate="window", gate_window=0)
    params.write_text(yaml.safe_dump(data))
    result = run(params)
    assert result.exit_code != 0 and "clamp.gate_window" in result.output


def test_the_default_gate_writes_its_config_without_torch(tmp_path):
    """The stage's own process, as DVC starts it: the window gate needs the SAE's cfg.json
    alone, so clamp-config (a clamp sweep point's first stage) imports no torch."""
    params = stage_inputs(tmp_path, gate="window", gate_window=6)
    code = (
        "import sys\n"
        f"sys.argv = ['sae-unlearn', 'clamp-config', '--params', {str(params)!r}]\n"
        "from pipeline.cli import app\n"
        "try:\n    app()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
        "import gc\n"
        "print('objects frozen:', gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "torch imported: False" in out.stdout
    # the stage's process leaves its objects to the OS (pipeline.cli.skip_teardown_collections)
    assert "objects frozen: True" in out.stdout
    assert read_clamp_yaml(tmp_path / "clamp" / "clamp.yaml").gate == Gate("window", window=6)


def test_the_app_called_in_a_process_that_goes_on_freezes_nothing(tmp_path):
    frozen = gc.get_freeze_count()
    assert run(stage_inputs(tmp_path, gate="window", gate_window=6)).exit_code == 0
    assert gc.get_freeze_count() == frozen


def test_latents_beyond_the_sae_width_are_refused(tmp_path):
    params = stage_inputs(tmp_path, gate="window", gate_window=6)
    too_wide = identity_sae().cfg.d_sae
    selected = pd.DataFrame({"rank": [1], "latent": [too_wide], "threshold": [0.5]})
    selected.to_parquet(tmp_path / "select" / "selected.parquet")
    result = run(params)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(too_wide) in result.output
