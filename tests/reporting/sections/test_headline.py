"""The results card: forget/retain accuracy with intervals, alignment, attack summary."""

from __future__ import annotations

from pathlib import Path

from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.sections.headline import (
    attack_summary,
    fewshot_worst_case,
    gcg_summary,
    headline_section,
)

BASELINE = {
    "forget": {"acc": 0.8, "acc_ci": [0.7, 0.9], "acc_norm": 0.75, "n": 40},
    "retain": {"acc": 0.6, "acc_ci": [0.5, 0.7], "acc_norm": 0.58, "n": 60},
}
STEERED = {
    "forget": {"acc": 0.3, "acc_ci": [0.2, 0.4], "acc_norm": 0.35, "acc_norm_ci": [0.25, 0.45]},
    "retain": {"acc": 0.55, "acc_ci": [0.45, 0.65], "acc_norm": 0.5, "acc_norm_ci": [0.4, 0.6]},
    "alignment": 0.78125,
    "retain_ratio": 0.55 / 0.6,
    "primary_metric": "acc",
}


def test_card_holds_the_metrics_numbers(tmp_path: Path):
    inputs = ReportInputs(baseline=BASELINE, steered=STEERED)
    card, data = headline_section(inputs, tmp_path, "plots")
    assert card.table.headers == ["result", "baseline", "steered"]
    assert card.table.rows == [
        ["forget acc [95% CI]", "0.8000 [0.7000, 0.9000]", "0.3000 [0.2000, 0.4000]"],
        ["retain acc [95% CI]", "0.6000 [0.5000, 0.7000]", "0.5500 [0.4500, 0.6500]"],
    ]
    assert card.facts == [
        ("alignment", "0.7812"),
        ("retain ratio", "0.9167 (steered / baseline retain acc)"),
        ("attacks (steered forget acc)", "not run yet"),
    ]
    assert card.figure.link == "plots/accuracy.png" and card.figure.path.is_file()
    assert sorted(data) == ["accuracy_baseline.csv", "accuracy_steered.csv"]


def test_card_follows_the_primary_metric(tmp_path: Path):
    steered = {**STEERED, "primary_metric": "acc_norm"}
    card, _ = headline_section(ReportInputs(baseline=BASELINE, steered=steered), tmp_path, "p")
    assert card.table.rows == [
        ["forget acc_norm [95% CI]", "0.7500", "0.3500 [0.2500, 0.4500]"],
        ["retain acc_norm [95% CI]", "0.5800", "0.5000 [0.4000, 0.6000]"],
    ]


def test_card_without_metrics_says_so(tmp_path: Path):
    card, data = headline_section(ReportInputs(), tmp_path, "plots")
    assert card.table is None and data == {} and card.figure is None
    assert card.notes == ["No forget/retain accuracy yet: run evaluate-baseline and evaluate."]


def test_attack_summary_picks_the_worst_few_shot_count():
    attack = {
        "fewshot": {
            "baseline": {"0": 0.8, "4": {"acc": 0.9}, "16": 0.85},
            "steered": {"0": 0.3, "4": {"acc": 0.45}, "16": 0.45},
        },
        "gcg": {"steered": {"acc": 0.35, "acc_no_suffix": 0.3}},
    }
    # A tie (0.45 at k=4 and k=16) goes to the fewer examples.
    assert fewshot_worst_case(attack) == "few-shot worst case 0.4500 at k=4 (baseline 0.9000)"
    assert gcg_summary(attack) == "GCG suffix 0.3500 (0.3000 without it)"
    assert attack_summary(ReportInputs(attack=attack)) == (
        "few-shot worst case 0.4500 at k=4 (baseline 0.9000); GCG suffix 0.3500 (0.3000 without it)"
    )
    only_steered = {"fewshot": {"steered": {"1": 0.5}}}
    assert fewshot_worst_case(only_steered) == "few-shot worst case 0.5000 at k=1"
    assert gcg_summary(only_steered) is None
    assert attack_summary(ReportInputs(attack={"gibberish": {}})) == "no few-shot or GCG results"
