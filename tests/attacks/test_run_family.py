"""`sae-unlearn attack-family`: each family's baseline half, then the steered half joining
it, on a tiny model; and the refusals before any model loads."""

import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.attacks.test_run import attack_project, invoke
from tests.tiny import TRAINING_TEXT

RETAIN_TEXT = "The Nile flows north through the desert to the sea, past old farms and towns. " * 3


def family_project(tmp_path, tiny_model_dir):
    params_path = attack_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load(params_path.read_text())
    corpora = tmp_path / "prepared" / "corpora"
    corpora.mkdir(parents=True)
    pd.DataFrame({"text": ["too short", RETAIN_TEXT], "source": ["a", "b"]}).to_parquet(
        corpora / "retain_corpus.parquet"
    )
    pd.DataFrame({"text": TRAINING_TEXT[:6], "source": ["f"] * 6}).to_parquet(
        corpora / "forget_corpus.parquet"
    )
    params["sae"]["layer"] = 1  # the tiny clamp's layer: whitebox's default is the one before
    params["attack"].update(
        n_eval=None,
        families_dir=str(tmp_path / "families"),
        icl={"k": [0, 1]},
        evasion={"perturbations": ["upper", "filler", "template"], "filler_words": 5},
        whitebox={
            "n_train": 2,
            "soft_tokens": 3,
            "soft_steps": 2,
            "bounds": [0.2],
            "residual_steps": 2,
        },
        relearn={"n_passages": 2, "seq_len": 8, "batch_size": 2, "steps": 2, "eval_every": 1},
    )
    params_path.write_text(yaml.safe_dump(params))
    return params_path


def test_family_halves_join_into_metrics(tmp_path, tiny_model_dir):
    params = str(family_project(tmp_path, tiny_model_dir))
    families = (
        ("icl", ["k=0", "k=1"]),
        ("evasion", ["none", "upper", "filler"]),
        ("whitebox", ["none", "soft_prompt", "residual_0.2"]),
        ("relearn", ["step=0", "step=1", "step=2"]),
    )
    for family, settings in families:
        invoke("attack-family", family, "--model", "baseline", "--params", params)
        half_dir = tmp_path / "families" / f"{family}_baseline"
        half = json.loads((half_dir / "metrics.json").read_text())
        assert "steered" not in half
        invoke("attack-family", family, "--params", params)
        metrics = json.loads((tmp_path / f"attack_{family}.json").read_text())
        for setting in settings:
            if family == "whitebox" and setting.startswith("residual"):
                assert setting not in metrics["baseline"]  # nothing to recover there
                assert 0.0 <= metrics["steered"][setting]["acc"] <= 1.0
                continue
            assert metrics["baseline"][setting]["gate_share"] is None
            if family in ("icl", "evasion"):  # scored with the gate recorded
                assert 0.0 <= metrics["steered"][setting]["gate_share"] <= 1.0
            low, high = metrics["steered"][setting]["acc_ci"]
            assert low <= metrics["steered"][setting]["acc"] <= high
        joined = tmp_path / "families" / family
        assert json.loads((joined / "metrics.json").read_text()) == metrics
    whitebox = json.loads((tmp_path / "attack_whitebox.json").read_text())
    assert set(whitebox["recovery"]) == {"soft_prompt", "residual_0.2"}
    relearn = json.loads((tmp_path / "attack_relearn.json").read_text())
    assert 0.0 <= relearn["steered"]["step=2"]["retain_acc"] <= 1.0
    examples = json.loads((tmp_path / "families" / "evasion" / "examples.json").read_text())
    # the filler: the first 5 words of the first retain document that has 5
    assert examples["filler"][0].startswith("The Nile flows north through ")
    assert examples["upper"][0] == examples["none"][0].upper()
    run = json.loads((tmp_path / "families" / "evasion" / "run.json").read_text())
    assert run["config"]["filler"] == "The Nile flows north through"


def test_bad_family_and_model_are_refused(tmp_path, tiny_model_dir):
    params = str(family_project(tmp_path, tiny_model_dir))
    result = CliRunner().invoke(app, ["attack-family", "gcgx", "--params", params])
    assert result.exit_code == 2 and "unknown attack family 'gcgx'" in result.output
    result = CliRunner().invoke(app, ["attack-family", "icl", "--model", "both"])
    assert result.exit_code == 2 and "choose baseline or steered" in result.output


def test_steered_half_needs_the_baseline_half_of_the_same_config(tmp_path, tiny_model_dir):
    params_path = family_project(tmp_path, tiny_model_dir)
    params = str(params_path)
    result = CliRunner().invoke(app, ["attack-family", "evasion", "--params", params])
    assert result.exit_code == 2
    assert "no baseline evasion attack results" in result.output
    assert "--model baseline" in result.output and "Traceback" not in result.output
    invoke("attack-family", "evasion", "--model", "baseline", "--params", params)
    edited = yaml.safe_load(params_path.read_text())
    edited["attack"]["evasion"]["noise_rate"] = 0.5
    params_path.write_text(yaml.safe_dump(edited))
    result = CliRunner().invoke(app, ["attack-family", "evasion", "--params", params])
    assert result.exit_code == 2 and "another attack config" in result.output


def test_unknown_perturbation_is_refused_by_the_params_schema(tmp_path, tiny_model_dir):
    params_path = family_project(tmp_path, tiny_model_dir)
    edited = yaml.safe_load(params_path.read_text())
    edited["attack"]["evasion"]["perturbations"] = ["upper", "leetspeak"]
    params_path.write_text(yaml.safe_dump(edited))
    result = CliRunner().invoke(
        app, ["attack-family", "evasion", "--model", "baseline", "--params", str(params_path)]
    )
    assert result.exit_code == 2
    assert "attack.evasion.perturbations" in result.output and "leetspeak" in result.output


def test_more_icl_shots_than_dev_questions_are_refused_before_the_model_loads(
    tmp_path, tiny_model_dir
):
    params_path = family_project(tmp_path, tiny_model_dir)
    edited = yaml.safe_load(params_path.read_text())
    edited["attack"]["icl"]["k"] = [0, 99]
    edited["model"]["dir"] = str(tmp_path / "no-model-here")  # never reached
    params_path.write_text(yaml.safe_dump(edited))
    result = CliRunner().invoke(
        app, ["attack-family", "icl", "--model", "baseline", "--params", str(params_path)]
    )
    assert result.exit_code == 2
    assert "attack.icl.k asks for 99 shots" in result.output and "Traceback" not in result.output
