"""evaluate-baseline and evaluate on a tiny model: every present role, dev/test halves,
known-correct accuracy, and no retain_near keys when there is no retain_near set."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.evaluation.contamination import contamination_sentence
from sae_unlearn.steering import clamp_prime, write_clamp_yaml
from tests.evaluation.helpers import questions, tiny_sae

POOLED = ["acc", "acc_ci", "acc_norm", "acc_norm_ci", "n", "by_subject"]


@pytest.fixture
def stage_dir(tmp_path, tiny_model_dir) -> Path:
    tiny_sae().save_model(tmp_path / "sae")
    write_clamp_yaml(clamp_prime(1, list(range(0, 64, 2)), -20.0), tmp_path / "clamp/clamp.yaml")
    data = tmp_path / "prepared/questions"
    data.mkdir(parents=True)
    questions(6).to_parquet(data / "forget_questions.parquet")
    questions(5, "geography", offset=2).to_parquet(data / "retain_questions.parquet")
    params = {
        "model": {"dir": str(tiny_model_dir)},
        "data": {"dir": str(tmp_path / "prepared")},
        "sae": {"dir": str(tmp_path / "sae"), "layer": 1},
        "clamp": {"dir": str(tmp_path / "clamp")},
        "evaluate": {
            "batch_size": 8,
            "bootstrap": 50,
            "dir": str(tmp_path / "results"),
            "baseline_metrics": str(tmp_path / "baseline.json"),
            "steered_metrics": str(tmp_path / "steered.json"),
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def run_stages(folder: Path, *extra: str) -> tuple[dict, dict]:
    params = ["--params", str(folder / "params.yaml")]
    for stage in ("evaluate-baseline", "evaluate"):
        result = CliRunner().invoke(app, [stage, *params, *extra])
        assert result.exit_code == 0, result.output
    return (
        json.loads((folder / "baseline.json").read_text()),
        json.loads((folder / "steered.json").read_text()),
    )


def test_two_roles_keep_todays_keys_and_add_halves_and_known(stage_dir):
    baseline, steered = run_stages(stage_dir)
    assert list(baseline) == ["format", "forget", "retain", "retain_contaminated"]
    assert list(steered) == [
        "format", "forget", "retain", "retain_contaminated", "alignment", "retain_ratio",
        "forget_ratio", "r_forget", "r_retain", "primary_metric", "retain_kept_99",
        "retain_contaminated_ratio", "dev", "test",
    ]  # fmt: skip
    for metrics, gate in ((baseline, []), (steered, ["gate"])):
        for role in ("forget", "retain", "retain_contaminated"):
            keys = [*POOLED, "dev", "test", "fingerprint", *gate, "known_correct"]
            assert list(metrics[role]) == keys
            assert metrics[role]["dev"]["n"] + metrics[role]["test"]["n"] == metrics[role]["n"]
    base_results = pd.read_parquet(stage_dir / "results/baseline/forget.parquet")
    # The tiny model answers the third forget question only (cloze), steered or not.
    assert base_results["known"].tolist() == [False, False, True, False, False, False]
    assert base_results["known"].tolist() == base_results["correct"].tolist()
    assert baseline["forget"]["known_correct"] == {"n": 1, "share": pytest.approx(1 / 6)}
    assert steered["forget"]["known_correct"]["acc"] == 1.0
    assert steered["forget"]["known_correct"]["n"] == 1
    assert not (stage_dir / "results/baseline/retain_near.parquet").exists()
    assert not (stage_dir / "results/baseline/retain_near_contaminated.parquet").exists()


def test_the_retain_questions_are_scored_again_after_a_contaminating_sentence(stage_dir):
    baseline, steered = run_stages(stage_dir)
    retain = questions(5, "geography", offset=2)
    for kind in ("baseline", "steered"):
        got = pd.read_parquet(stage_dir / f"results/{kind}/retain_contaminated.parquet")
        plain = pd.read_parquet(stage_dir / f"results/{kind}/retain.parquet")
        assert got["question"].tolist() == [
            f"{contamination_sentence(q)} {q}" for q in retain["question"]
        ]
        assert got["original_question"].tolist() == retain["question"].tolist()
        assert got["split"].tolist() == plain["split"].tolist()
        assert got["subject"].tolist() == plain["subject"].tolist()
    base = pd.read_parquet(stage_dir / "results/baseline/retain_contaminated.parquet")
    base_plain = pd.read_parquet(stage_dir / "results/baseline/retain.parquet")
    assert base["known"].tolist() == base_plain["known"].tolist()
    for metrics in (baseline, steered):
        block = metrics["retain_contaminated"]
        assert block["n"] == 5 and list(block["by_subject"]) == ["geography"]
        assert block["dev"]["n"] == metrics["retain"]["dev"]["n"]
    assert baseline["retain_contaminated"]["acc"] == pytest.approx(base["correct"].mean())
    assert steered["retain_contaminated_ratio"] == pytest.approx(
        steered["retain_contaminated"]["acc"] / baseline["retain_contaminated"]["acc"]
    )
    assert (
        steered["retain_contaminated"]["known_correct"]["n"]
        == (baseline["retain_contaminated"]["known_correct"]["n"])
    )


def test_retain_near_scored_when_prepared_or_given(stage_dir):
    _, two_roles = run_stages(stage_dir)
    near = questions(4, "botany", offset=5)
    near.to_parquet(stage_dir / "prepared/questions/retain_near_questions.parquet")
    baseline, steered = run_stages(stage_dir)
    assert list(baseline) == [
        "format", "forget", "retain", "retain_near", "retain_contaminated",
        "retain_near_contaminated",
    ]  # fmt: skip
    assert baseline["retain_near_contaminated"]["n"] == 4
    assert "retain_near_contaminated_ratio" in steered
    assert baseline["retain_near"]["n"] == 4
    assert list(baseline["retain_near"]["by_subject"]) == ["botany"]
    # All four fall in the test half; the model answers one, steered or not.
    assert baseline["retain_near"]["dev"] == {"n": 0}
    assert baseline["retain_near"]["test"]["n"] == 4
    assert baseline["retain_near"]["acc"] == steered["retain_near"]["acc"] == 0.25
    assert steered["retain_near"]["known_correct"]["n"] == 1
    assert steered["retain_near_ratio"] == 1.0
    # Forget accuracy is the same steered (1/6, below chance): R_forget = 1, alignments 0.
    assert steered["alignment_near"] == steered["alignment"] == 0.0
    assert "alignment_near" in steered["test"] and "alignment_near" not in steered["dev"]
    # Adding the role changes none of the two-role figures.
    for key in ("forget", "retain", "alignment", "retain_ratio"):
        assert steered[key] == two_roles[key]

    # The option names a set outside data.dir; the prepared one is then ignored.
    other = stage_dir / "near.parquet"
    questions(3, "zoology", offset=1).to_parquet(other)
    baseline, steered = run_stages(stage_dir, "--retain-near-questions", str(other))
    assert baseline["retain_near"]["n"] == 3 and steered["retain_near"]["n"] == 3


def refused(folder: Path, stage: str, *extra: str) -> str:
    """The stage's message for bad input: exit 2, no traceback, nothing written."""
    result = CliRunner().invoke(app, [stage, "--params", str(folder / "params.yaml"), *extra])
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    assert not (folder / "steered.json").exists()
    assert not (folder / "results/steered").exists()
    return result.output


def test_a_missing_baseline_is_an_error_unless_none_is_asked_for(stage_dir):
    message = refused(stage_dir, "evaluate")
    assert str(stage_dir / "baseline.json") in message and "--baseline none" in message
    result = CliRunner().invoke(
        app, ["evaluate", "--params", str(stage_dir / "params.yaml"), "--baseline", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "alignment" not in json.loads((stage_dir / "steered.json").read_text())


def test_a_baseline_of_other_questions_is_refused_before_scoring(stage_dir):
    run_stages(stage_dir)
    (stage_dir / "steered.json").unlink()
    for folder in ("results/steered",):
        for file in (stage_dir / folder).iterdir():
            file.unlink()
        (stage_dir / folder).rmdir()
    forget = stage_dir / "prepared/questions/forget_questions.parquet"
    edited = pd.read_parquet(forget)
    edited.loc[2, "question"] = edited.loc[2, "question"] + " (edited)"
    edited.to_parquet(forget)
    message = refused(stage_dir, "evaluate")
    assert "baseline.json was scored on other forget questions" in message
    assert "6 given now" in message and "evaluate-baseline" in message
    # The same questions re-saved with other spacing and case still match.
    original = questions(6)
    original["question"] = [f"  {q.upper()}\n" for q in original["question"]]
    original.to_parquet(forget)
    baseline, steered = run_stages(stage_dir)
    assert baseline["forget"]["fingerprint"] == steered["forget"]["fingerprint"]
    assert "alignment" in steered


def test_a_clamp_config_for_another_sae_is_refused_with_both_named(stage_dir):
    from sae_unlearn.saes.identity import sae_identity
    from sae_unlearn.steering import read_clamp_yaml

    other = tiny_sae(seed=1)
    other.save_model(stage_dir / "other_sae")
    clamp = stage_dir / "clamp/clamp.yaml"
    cfg = read_clamp_yaml(clamp)
    cfg.sae = sae_identity(stage_dir / "other_sae")
    write_clamp_yaml(cfg, clamp)
    message = refused(stage_dir, "evaluate", "--baseline", "none")
    assert "was made for another SAE" in message
    assert str(stage_dir / "other_sae") in message and str(stage_dir / "sae") in message
    cfg.sae = sae_identity(stage_dir / "sae")
    write_clamp_yaml(cfg, clamp)
    run_stages(stage_dir)


def test_the_baseline_is_taken_where_the_hook_edits_nothing_and_refused_if_of_another_model(
    stage_dir,
):
    from sae_unlearn.steering import gated_clamp

    # A gate that never opens: every choice takes the baseline's log-likelihood.
    clamp = gated_clamp(1, list(range(0, 64, 2)), [1e9] * 32, -20.0)
    write_clamp_yaml(clamp, stage_dir / "clamp/clamp.yaml")
    baseline, steered = run_stages(stage_dir)
    for role in ("forget", "retain", "retain_contaminated"):
        assert steered[role]["acc"] == baseline[role]["acc"]
        base = pd.read_parquet(stage_dir / f"results/baseline/{role}.parquet")
        ours = pd.read_parquet(stage_dir / f"results/steered/{role}.parquet")
        assert ours["loglik"].map(list).tolist() == base["loglik"].map(list).tolist()
        assert not ours["gate_opened"].any()
    # Results of another model (here shifted by 0.5) fail the check on the first reused one.
    (stage_dir / "steered.json").unlink()
    for file in (stage_dir / "results/steered").iterdir():
        file.unlink()
    (stage_dir / "results/steered").rmdir()
    path = stage_dir / "results/baseline/forget.parquet"
    frame = pd.read_parquet(path)
    frame["loglik"] = [[x + 0.5 for x in loglik] for loglik in frame["loglik"]]
    frame.to_parquet(path)
    message = refused(stage_dir, "evaluate")
    assert str(path) in message and "another model, format or template" in message


def test_the_steered_rows_start_from_the_baselines_residuals_and_others_are_refused(stage_dir):
    from sae_unlearn.evaluation import read_role_residuals, residuals_path, write_residuals

    # The hook (clamp_prime on block 1, sae.layer 1) starts each row after block 0.
    baseline, steered = run_stages(stage_dir)
    kept = read_role_residuals(stage_dir / "results/baseline", list(steered)[1:])
    assert sorted(kept) == ["forget", "retain", "retain_contaminated"]
    assert all(k.block == 0 and len(k.tokens) >= 1 for k in kept.values())
    with_kept = (stage_dir / "steered.json").read_text()
    plain = {role: pd.read_parquet(stage_dir / f"results/steered/{role}.parquet") for role in kept}
    # Without the residual files, every row runs from block 0: the same results.
    for role in kept:
        residuals_path(stage_dir / "results/baseline", role).unlink()
    result = CliRunner().invoke(app, ["evaluate", "--params", str(stage_dir / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert (stage_dir / "steered.json").read_text() == with_kept
    for role, frame in plain.items():
        again = pd.read_parquet(stage_dir / f"results/steered/{role}.parquet")
        pd.testing.assert_frame_equal(again, frame)
    # Residuals of other rows (here the forget rows given as the retain ones) are refused.
    write_residuals(residuals_path(stage_dir / "results/baseline", "retain"), kept["forget"])
    (stage_dir / "steered.json").unlink()
    for file in (stage_dir / "results/steered").iterdir():
        file.unlink()
    (stage_dir / "results/steered").rmdir()
    message = refused(stage_dir, "evaluate")
    assert "retain.residuals.safetensors" in message and "rerun evaluate-baseline" in message


def test_a_hook_layer_the_model_lacks_keeps_no_rows(stage_dir):
    result = CliRunner().invoke(
        app, ["evaluate-baseline", "--params", str(stage_dir / "params.yaml"), "--layer", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "sae.layer=5 is not a layer of this 2-layer model" in result.output
    assert sorted(p.name for p in (stage_dir / "results/baseline").iterdir()) == [
        "forget.parquet",
        "retain.parquet",
        "retain_contaminated.parquet",
    ]
