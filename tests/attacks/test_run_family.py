"""`sae-unlearn attack-family`: each family's baseline half, then the steered half joining
it, on a tiny model; and the refusals before any model loads."""

import json
import math

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.attacks.project import attack_project, invoke

family_project = attack_project


def test_family_halves_join_into_metrics(tmp_path, tiny_model_dir):
    params = str(family_project(tmp_path, tiny_model_dir))
    families = (
        ("fewshot", ["k=0", "k=2"]),
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
            # scored with the gate recorded (k=0 and none: read from the evaluation's results)
            if family in ("fewshot", "icl", "evasion") or setting in ("none", "step=0"):
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


def test_gcg_then_generation_with_the_found_suffixes(tmp_path, tiny_model_dir):
    params_path = attack_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load(params_path.read_text())
    params["attack"]["gcg"]["per_question"] = True
    params_path.write_text(yaml.safe_dump(params))
    p = str(params_path)
    result = CliRunner().invoke(
        app, ["attack-family", "generation", "--model", "baseline", "--params", p]
    )
    assert result.exit_code == 2 and "no GCG suffixes" in result.output  # gcg runs first
    for model in ("baseline", "steered"):
        invoke("attack-family", "gcg", "--model", model, "--params", p)
    gcg = json.loads((tmp_path / "attack_gcg.json").read_text())
    steered_eval = json.loads((tmp_path / "steered.json").read_text())
    for name in ("baseline", "steered"):
        search = gcg["search"][name]
        assert search["final_loss"] <= search["init_loss"] and search["steps"] == 2
        assert list(search["acc_by_step"]) == ["0", "1", "2"]  # no suffix, then each step
        # step 0 is no suffix: the unattacked accuracy, the evaluation's own
        assert search["acc_by_step"]["0"] == gcg[name]["none"]["acc"]
        # 2 target questions: each share is a count out of 2
        assert search["targets_acc_per_question"] in (0.0, 0.5, 1.0)
        assert 0.0 <= gcg[name]["suffix"]["acc"] <= 1.0
    assert gcg["steered"]["none"]["acc"] == steered_eval["forget"]["test"]["acc"]
    assert gcg["n_targets"] == 2
    found = json.loads((tmp_path / "families" / "gcg" / "suffixes.json").read_text())
    assert set(found["suffixes"]) == {"baseline", "steered"}
    losses = json.loads((tmp_path / "families" / "gcg" / "losses.json").read_text())
    assert [len(losses[m]) for m in ("baseline", "steered")] == [3, 3]  # initial + 2 steps
    for model in ("baseline", "steered"):
        invoke("attack-family", "generation", "--model", model, "--params", p)
    generation = json.loads((tmp_path / "attack_generation.json").read_text())
    for name in ("baseline", "steered"):
        for setting in ("plain", "suffix"):
            figures = generation["fluency"][name][setting]
            assert math.isfinite(figures["ppl_median"])
            # thresholds no continuation fails: perplexity 1e6, any repetition allowed
            assert figures["fluent_share"] == 1.0 and figures["repetitive_share"] == 0.0
            assert 0.0 <= figures["leak_share"] <= 1.0
    samples = json.loads((tmp_path / "families" / "generation" / "samples.json").read_text())
    shown = min(2, generation["n_prompts"])  # n_samples, of the prompts continued
    assert generation["n_prompts"] == min(3, gcg["n"])
    assert [len(samples[m]) for m in ("baseline", "steered")] == [shown, shown]
    steered_suffix = found["suffixes"]["steered"]["suffix"]
    assert f"? {steered_suffix.strip()}\nAnswer:" in samples["steered"][0]["suffix"]["prompt"]
    assert "x x" not in samples["steered"][0]["plain"]["prompt"]


def test_a_family_scores_its_reference_itself_off_the_evaluated_path(tmp_path, tiny_model_dir):
    """With another question file than the evaluated one, the family scores its k=0 row
    itself; on the evaluated file it reads it: the same accuracy either way."""
    params = str(attack_project(tmp_path, tiny_model_dir))
    forget = tmp_path / "prepared" / "questions" / "forget_questions.parquet"
    invoke("attack-family", "icl", "--model", "baseline", "--params", params)
    read = json.loads((tmp_path / "families" / "icl_baseline" / "metrics.json").read_text())
    invoke(
        "attack-family",
        "icl",
        "--model",
        "baseline",
        "--params",
        params,
        "--forget-questions",
        str(forget),
    )
    scored = json.loads((tmp_path / "families" / "icl_baseline" / "metrics.json").read_text())
    assert scored["baseline"]["k=0"]["acc"] == read["baseline"]["k=0"]["acc"]
    assert scored["baseline"]["k=1"] == read["baseline"]["k=1"]


def test_evaluation_results_of_other_questions_are_refused(tmp_path, tiny_model_dir):
    params = str(attack_project(tmp_path, tiny_model_dir, evaluated=False))
    result = CliRunner().invoke(
        app, ["attack-family", "icl", "--model", "baseline", "--params", params]
    )
    assert result.exit_code == 2 and "no such evaluation metrics" in result.output
    assert "evaluate-baseline" in result.output and "Traceback" not in result.output
    invoke("evaluate-baseline", "--params", params)
    questions = tmp_path / "prepared" / "questions" / "forget_questions.parquet"
    frame = pd.read_parquet(questions)
    frame["question"] = frame["question"] + " (edited)"
    frame.to_parquet(questions)
    result = CliRunner().invoke(
        app, ["attack-family", "icl", "--model", "baseline", "--params", params]
    )
    assert result.exit_code == 2 and "scored on other forget questions" in result.output


def test_same_prompt_families_keep_the_baseline_rows_and_the_steered_half_starts_there(
    tmp_path, tiny_model_dir
):
    params = str(family_project(tmp_path, tiny_model_dir))
    for family in ("fewshot", "icl", "evasion"):
        invoke("attack-family", family, "--model", "baseline", "--params", params)
        half_dir = tmp_path / "families" / f"{family}_baseline"
        kept = sorted(p.name for p in half_dir.glob("*.residuals.safetensors"))
        scored = json.loads((half_dir / "metrics.json").read_text())["baseline"]
        # every setting the half scored itself (k=0 and none come from the evaluation)
        assert kept == sorted(
            f"{s}.residuals.safetensors" for s in scored if s not in ("k=0", "none")
        )
        invoke("attack-family", family, "--params", params)
        with_rows = (tmp_path / f"attack_{family}.json").read_text()
        for path in half_dir.glob("*.residuals.safetensors"):
            path.unlink()
        invoke("attack-family", family, "--params", params)
        assert (tmp_path / f"attack_{family}.json").read_text() == with_rows
        # the joined folder holds the metrics and records, not the baseline's rows
        assert not list((tmp_path / "families" / family).glob("*.safetensors"))
