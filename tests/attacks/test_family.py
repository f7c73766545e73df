"""An attack family's outputs: scored settings, and its two halves written, read and joined."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sae_unlearn.attacks.family import (
    FAMILIES,
    FamilyOutputs,
    add_setting,
    join_family_halves,
    read_family_half,
    write_family_half,
)
from sae_unlearn.errors import MissingInputError, UserError


def results(correct, subjects, gate_opened=None) -> pd.DataFrame:
    """A results frame with the columns evaluation gives (and the gate's, when steered)."""
    frame = pd.DataFrame(
        {
            "question": [f"q{i}" for i in range(len(correct))],
            "subject": subjects,
            "correct": correct,
            "correct_norm": [not c for c in correct],
        }
    )
    if gate_opened is not None:
        frame["gate_opened"] = gate_opened
        frame["gate_position"] = pd.array([1 if g else None for g in gate_opened], dtype="Int64")
    return frame


def test_add_setting_scores_a_baseline_setting_by_hand():
    out = FamilyOutputs()
    frame = results([True, False, True, True], ["a", "a", "b", "b"])
    fig = add_setting(out, "baseline", "none", frame, bootstrap=200, seed=0)
    assert fig["acc"] == 0.75
    assert fig["gate_share"] is None
    low, high = fig["acc_ci"]
    assert 0.0 <= low <= 0.75 <= high <= 1.0
    assert out.metrics == {"baseline": {"none": fig}}
    summary = out.accuracy["baseline"]["none"]
    assert summary["acc"] == 0.75 and summary["n"] == 4
    assert summary["acc_norm"] == 0.25
    assert summary["by_subject"]["a"]["acc"] == 0.5
    assert summary["by_subject"]["b"]["acc"] == 1.0
    assert summary["by_subject"]["b"]["acc_ci"] == [1.0, 1.0]  # all correct: no spread


def test_add_setting_gives_the_steered_gate_share_by_hand():
    out = FamilyOutputs()
    first = results([False] * 4, ["a"] * 4, gate_opened=[True, False, False, True])
    second = results([True] * 5, ["a"] * 5, gate_opened=[True] * 5)
    fig = add_setting(out, "steered", "k=0", first, bootstrap=50, seed=0)
    assert fig == {"acc": 0.0, "acc_ci": [0.0, 0.0], "gate_share": 0.5}
    fig = add_setting(out, "steered", "k=1", second, bootstrap=50, seed=0)
    assert fig == {"acc": 1.0, "acc_ci": [1.0, 1.0], "gate_share": 1.0}
    add_setting(out, "baseline", "k=0", results([True], ["a"]), bootstrap=50, seed=0)
    assert list(out.metrics) == ["steered", "baseline"]
    assert list(out.metrics["steered"]) == ["k=0", "k=1"]
    assert out.metrics["steered"]["k=0"]["gate_share"] == 0.5


def test_every_family_has_a_stage_pair_a_params_block_and_a_report_input():
    import yaml

    from pipeline.params import Params
    from sae_unlearn.reporting.inputs import FAMILY_INPUTS

    root = Path(__file__).resolve().parents[2]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for family in FAMILIES:
        assert stages[f"attack-{family}-baseline"]["cmd"].endswith(f"{family} --model baseline")
        assert f"metrics/attack_{family}.json" in str(stages[f"attack-{family}"]["metrics"])
        assert isinstance(Params().get(f"attack.{family}"), dict)
        assert f"attack_{family}" in FAMILY_INPUTS


def outputs(model: str, acc: float, n: int = 4) -> FamilyOutputs:
    figures = {"acc": acc, "acc_ci": [acc - 0.25, acc], "gate_share": None}
    return FamilyOutputs(
        metrics={model: {"none": figures, "upper": figures}, "n": n},
        accuracy={model: {"none": {"acc": acc, "n": n, "by_subject": {}}}},
        records={"examples": {"none": ["What?"], "upper": ["WHAT?"]}},
    )


RECORD = {"config": {"perturbations": ["upper"], "seed": 0}, "forget": "abc123"}


def test_a_half_round_trips(tmp_path):
    half = outputs("baseline", 0.5)
    write_family_half(half, RECORD, tmp_path / "half")
    assert sorted(p.name for p in (tmp_path / "half").iterdir()) == [
        "accuracy.json",
        "examples.json",
        "metrics.json",
        "run.json",
    ]
    assert json.loads((tmp_path / "half" / "run.json").read_text()) == RECORD
    back = read_family_half(tmp_path / "half", RECORD, "evasion")
    assert back == half
    # Rewriting replaces the folder whole: a record no longer given is gone.
    write_family_half(FamilyOutputs(half.metrics, half.accuracy), RECORD, tmp_path / "half")
    assert read_family_half(tmp_path / "half", RECORD, "evasion").records == {}


def test_a_half_of_another_run_is_refused(tmp_path):
    write_family_half(outputs("baseline", 0.5), RECORD, tmp_path / "half")
    other_config = {**RECORD, "config": {"perturbations": ["upper"], "seed": 1}}
    with pytest.raises(UserError, match="with another attack config.*attack-family icl"):
        read_family_half(tmp_path / "half", other_config, "icl")
    with pytest.raises(UserError, match="on other forget questions"):
        read_family_half(tmp_path / "half", {**RECORD, "forget": "def456"}, "icl")
    with pytest.raises(UserError, match="on other retain questions"):
        read_family_half(tmp_path / "half", {**RECORD, "retain": "r1"}, "icl")


def test_a_missing_or_incomplete_half_is_refused(tmp_path):
    with pytest.raises(MissingInputError, match="no baseline evasion attack results"):
        read_family_half(tmp_path / "absent", RECORD, "evasion")
    write_family_half(outputs("baseline", 0.5), RECORD, tmp_path / "half")
    (tmp_path / "half" / "accuracy.json").unlink()
    with pytest.raises(MissingInputError, match="has no accuracy.json"):
        read_family_half(tmp_path / "half", RECORD, "evasion")
    (tmp_path / "half" / "accuracy.json").write_text("{not json")
    with pytest.raises(UserError, match="accuracy.json.*cannot be read as a attack results"):
        read_family_half(tmp_path / "half", RECORD, "evasion")


def test_joined_halves_merge_both_models():
    base, steered = outputs("baseline", 0.75), outputs("steered", 0.25)
    both = join_family_halves(base, steered)
    assert both.metrics == {
        "baseline": base.metrics["baseline"],
        "n": 4,
        "steered": steered.metrics["steered"],
    }
    assert list(both.metrics) == ["baseline", "n", "steered"]
    assert both.accuracy == {
        "baseline": base.accuracy["baseline"],
        "steered": steered.accuracy["steered"],
    }
    assert both.records == {"examples": {"none": ["What?"], "upper": ["WHAT?"]}}
    # A record only one half has is kept.
    steered.records["samples"] = [1, 2]
    assert join_family_halves(base, steered).records["samples"] == [1, 2]


def test_halves_that_disagree_are_not_joined():
    with pytest.raises(ValueError, match="disagree: 4 vs 5"):
        join_family_halves(outputs("baseline", 0.75), outputs("steered", 0.25, n=5))
    steered = outputs("steered", 0.25)
    steered.records["examples"]["upper"] = ["What?"]
    with pytest.raises(ValueError, match="disagree"):
        join_family_halves(outputs("baseline", 0.75), steered)
    # The same model in both halves must agree to the last figure.
    with pytest.raises(ValueError, match="disagree: 0.75 vs 0.5"):
        join_family_halves(outputs("baseline", 0.75), outputs("baseline", 0.5))


def test_a_record_named_like_a_halfs_own_file_does_not_replace_it(tmp_path):
    half = outputs("baseline", 0.5)
    half.records["metrics"] = {"something": "else"}
    try:
        write_family_half(half, RECORD, tmp_path / "half")
    except ValueError:
        return  # refusing the name is as good
    assert read_family_half(tmp_path / "half", RECORD, "evasion").metrics == half.metrics


def test_a_halfs_kept_rows_round_trip(tmp_path):
    import torch

    from sae_unlearn.evaluation.residuals import RowResiduals

    half = outputs("baseline", 0.5)
    rows = RowResiduals(0, "k=2", [torch.tensor([2, 5, 9])], [torch.randn(3, 4)])
    half.residuals = {"k=2": rows}
    write_family_half(half, RECORD, tmp_path / "half")
    assert (tmp_path / "half" / "k=2.residuals.safetensors").is_file()
    back = read_family_half(tmp_path / "half", RECORD, "fewshot")
    assert list(back.residuals) == ["k=2"] and back.residuals["k=2"].block == 0
    assert back.residuals["k=2"].tokens[0].tolist() == [2, 5, 9]
    assert torch.equal(back.residuals["k=2"].hidden[0], rows.hidden[0])
    assert back.metrics == half.metrics and back.records == half.records
