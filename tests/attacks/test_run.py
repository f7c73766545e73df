import json
import math

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.steering import clamp_prime, write_clamp_yaml
from tests.evaluation.helpers import questions, tiny_sae


def attack_project(tmp_path, tiny_model_dir):
    sae_dir = tmp_path / "sae"
    tiny_sae().save_model(sae_dir)
    write_clamp_yaml(clamp_prime(1, list(range(0, 64, 2)), -20.0), tmp_path / "clamp.yaml")
    data = tmp_path / "prepared"
    (data / "questions").mkdir(parents=True)
    questions(6).to_parquet(data / "questions/forget_questions.parquet")
    questions(6, "geography", offset=2).to_parquet(data / "questions/retain_questions.parquet")
    params = {
        "seed": 0,
        "model": {"dir": str(tiny_model_dir), "dtype": "float32"},
        "data": {"dir": str(data)},
        "sae": {"dir": str(sae_dir)},
        "clamp": {"dir": str(tmp_path)},
        "evaluate": {"format": "cloze", "batch_size": 8, "bootstrap": 50},
        "attack": {
            "seed": 0,
            "n_eval": 5,
            "fewshot": [0, 2],
            "dir": str(tmp_path / "results"),
            "baseline_dir": str(tmp_path / "baseline_half"),
            "metrics": str(tmp_path / "attack.json"),
            "gcg": {
                "n_questions": 2,
                "num_steps": 2,
                "search_width": 8,
                "topk": 8,
                "seed": 42,
                "optim_str_init": "x x x",
            },
            "gibberish": {
                "n_prompts": 3,
                "max_new_tokens": 4,
                "fluent_ppl": 1e6,
                "n_samples": 2,
                "min_distinct_2": 0.0,
                "max_repeat": 4,  # 4 new tokens cannot repeat a longer n-gram
            },
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_attack_stages(tmp_path, tiny_model_dir):
    params = str(attack_project(tmp_path, tiny_model_dir))
    invoke("attack-baseline", "--params", params)
    half = json.loads((tmp_path / "baseline_half" / "metrics.json").read_text())
    assert list(half["fewshot"]) == ["baseline", "n"]  # the baseline's half alone
    assert set(half["gibberish"]) >= {"baseline", "baseline_suffix"}
    assert "steered" not in half["gibberish"]
    invoke("attack", "--params", params)
    metrics = json.loads((tmp_path / "attack.json").read_text())
    for name in ("baseline", "steered"):
        for k in ("0", "2"):
            assert 0.0 <= metrics["fewshot"][name][k] <= 1.0
        for key in ("acc", "final_loss", "init_loss", "acc_no_suffix"):
            assert math.isfinite(metrics["gcg"][name][key])
        assert metrics["gcg"][name]["final_loss"] <= metrics["gcg"][name]["init_loss"]
    for setting in ("baseline", "steered", "steered_suffix"):
        assert math.isfinite(metrics["gibberish"][setting]["ppl_median"])
        # thresholds no continuation fails: perplexity 1e6, any repetition allowed
        assert metrics["gibberish"][setting]["fluent_share"] == 1.0
        assert metrics["gibberish"][setting]["repetitive_share"] == 0.0
        assert 0.0 <= metrics["gibberish"][setting]["leak_share"] <= 1.0
    assert metrics["fewshot"]["n"] == 5 and metrics["gcg"]["n_questions"] == 2
    curve = pd.read_csv(tmp_path / "results" / "gcg_loss.csv")
    assert list(curve.columns) == ["step", "model", "loss"]
    assert sorted(curve["model"].unique()) == ["baseline", "steered"]
    assert len(curve) == 2 * 3  # the initial loss and 2 steps per model
    found = json.loads((tmp_path / "results" / "suffixes.json").read_text())
    assert set(found["suffixes"]) == {"baseline", "steered"}
    assert len(found["samples"]) == 2
    assert "continuation" in found["samples"][0]["steered_suffix"]


def test_steered_half_refuses_a_baseline_half_of_other_params(tmp_path, tiny_model_dir):
    params = str(attack_project(tmp_path, tiny_model_dir))
    result = CliRunner().invoke(app, ["attack", "--params", params])
    assert result.exit_code == 2
    assert "no baseline attack results" in result.output and "attack-baseline" in result.output
    invoke("attack-baseline", "--params", params, "--num-steps", "1")
    result = CliRunner().invoke(app, ["attack", "--params", params])
    assert result.exit_code == 2
    assert "another attack config" in result.output


def test_gcg_budget_curve_and_per_question_suffixes(tmp_path, tiny_model_dir):
    params_path = attack_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load(params_path.read_text())
    params["attack"]["gcg"].update(eval_every=1, per_question=True)
    params_path.write_text(yaml.safe_dump(params))
    invoke("attack-baseline", "--params", str(params_path))
    gcg = json.loads((tmp_path / "baseline_half" / "metrics.json").read_text())["gcg"]["baseline"]
    assert list(gcg["acc_by_step"]) == ["0", "1", "2"]  # the initial string, then each step
    assert all(0.0 <= acc <= 1.0 for acc in gcg["acc_by_step"].values())
    # 2 target questions: each share is a count out of 2
    assert gcg["targets_acc_per_question"] in (0.0, 0.5, 1.0)
    assert gcg["targets_acc_universal"] in (0.0, 0.5, 1.0)
