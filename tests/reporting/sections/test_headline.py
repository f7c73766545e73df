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
    assert card.table.headers == [
        "set", "n", "baseline acc [95% CI]", "steered acc [95% CI]", "baseline test half",
        "steered test half", "known", "steered known-correct acc",
    ]  # fmt: skip
    assert card.table.rows == [
        ["forget", "40", "0.8000 [0.7000, 0.9000]", "0.3000 [0.2000, 0.4000]"] + ["–"] * 4,
        ["retain", "60", "0.6000 [0.5000, 0.7000]", "0.5500 [0.4500, 0.6500]"] + ["–"] * 4,
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
    assert card.table.headers[2:4] == ["baseline acc_norm [95% CI]", "steered acc_norm [95% CI]"]
    assert [row[:4] for row in card.table.rows] == [
        ["forget", "40", "0.7500", "0.3500 [0.2500, 0.4500]"],
        ["retain", "60", "0.5800", "0.5000 [0.4000, 0.6000]"],
    ]


def test_card_without_metrics_says_so(tmp_path: Path):
    card, data = headline_section(ReportInputs(), tmp_path, "plots")
    assert card.table is None and data == {} and card.figure is None
    assert card.notes == ["No accuracy yet: run evaluate-baseline and evaluate."]


def _fig(acc: float) -> dict:
    return {"acc": acc, "acc_ci": [acc - 0.1, acc + 0.1], "gate_share": None}


def test_attack_summary_picks_the_worst_few_shot_count():
    fewshot = {
        "baseline": {"k=0": _fig(0.8), "k=4": _fig(0.9), "k=16": 0.85},
        "steered": {"k=0": _fig(0.3), "k=4": _fig(0.45), "k=16": _fig(0.45)},
        "n": 68,
    }
    gcg = {
        "steered": {"none": _fig(0.3), "suffix": _fig(0.35)},
        "n": 68,
        "search": {"steered": {"final_loss": 1.5}},
    }
    # A tie (0.45 at k=4 and k=16) goes to the fewer examples.
    assert fewshot_worst_case(fewshot) == "few-shot worst case 0.4500 at k=4 (baseline 0.9000)"
    assert gcg_summary(gcg) == "GCG suffix 0.3500 (0.3000 without it)"
    inputs = ReportInputs(attack_families={"fewshot": fewshot, "gcg": gcg})
    assert attack_summary(inputs) == (
        "few-shot worst case 0.4500 at k=4 (baseline 0.9000); GCG suffix 0.3500 (0.3000 "
        "without it); strongest: fewshot: k=4 0.450 (baseline 0.900)"
    )
    only_steered = {"steered": {"k=1": _fig(0.5)}}
    assert fewshot_worst_case(only_steered) == "few-shot worst case 0.5000 at k=1"
    assert gcg_summary({"steered": {"suffix": _fig(0.4)}}) == "GCG suffix 0.4000"
    assert gcg_summary({"steered": {"none": _fig(0.3)}, "n": 68}) is None
    assert attack_summary(ReportInputs(attack_families={"fewshot": only_steered})) == (
        "few-shot worst case 0.5000 at k=1; strongest: fewshot: k=1 0.500"
    )
    # Another family alone: its strongest setting.
    evasion = {"steered": {"synonyms": _fig(0.4)}, "baseline": {"synonyms": _fig(0.7)}}
    assert attack_summary(ReportInputs(attack_families={"evasion": evasion})) == (
        "strongest: evasion: synonyms 0.400 (baseline 0.700)"
    )
    assert attack_summary(ReportInputs(attack_families={})) == "not run yet"


def role(acc: float, n: int, test: float, known: dict) -> dict:
    return {
        "acc": acc, "acc_ci": [acc - 0.1, acc + 0.1], "n": n,
        "dev": {"n": n // 2}, "test": {"acc": test, "acc_ci": [test - 0.2, test + 0.2]},
        "known_correct": known,
    }  # fmt: skip


def test_card_has_one_row_per_role_with_test_half_and_known_correct(tmp_path: Path):
    names = ["forget", "retain", "retain_near", "retain_contaminated", "retain_near_contaminated"]
    baseline = {
        name: role(0.8 - 0.05 * i, 10 * (i + 1), 0.7, {"n": 5 + i, "share": 0.5})
        for i, name in enumerate(names)
    }
    steered = {
        name: role(
            0.3 + 0.1 * i,
            10 * (i + 1),
            0.25 + 0.1 * i,
            {"acc": 0.5, "acc_ci": [0.25, 0.75], "n": 5 + i},
        )
        for i, name in enumerate(names)
    }
    steered |= {"retain_ratio": 0.5, "retain_contaminated_ratio": 0.25, "alignment_near": 0.125}
    card, _ = headline_section(ReportInputs(baseline=baseline, steered=steered), tmp_path, "p")
    assert [row[0] for row in card.table.rows] == names
    assert card.table.rows[3] == [
        "retain_contaminated", "40", "0.6500 [0.5500, 0.7500]", "0.6000 [0.5000, 0.7000]",
        "0.7000 [0.5000, 0.9000]", "0.5500 [0.3500, 0.7500]", "8", "0.5000 [0.2500, 0.7500]",
    ]  # fmt: skip
    facts = dict(card.facts)
    assert facts["retain contaminated ratio"] == (
        "0.2500 (steered / baseline retain_contaminated acc)"
    )
    assert facts["alignment near"] == "0.1250" and facts["retain ratio"].startswith("0.5000 ")
    # Two roles, as before: just their rows.
    two = {k: baseline[k] for k in names[:2]}
    card, _ = headline_section(ReportInputs(baseline=two, steered=None), tmp_path, "p")
    assert [row[:3] for row in card.table.rows] == [
        ["forget", "10", "0.8000 [0.7000, 0.9000]"],
        ["retain", "20", "0.7500 [0.6500, 0.8500]"],
    ]
    assert card.table.headers[-1] == "steered known-correct acc" and card.table.rows[0][-1] == "–"
