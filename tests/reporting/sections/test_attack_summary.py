"""The attack summary over every family, the relearning curve and the GCG budget curve."""

from __future__ import annotations

import pandas as pd
import pytest

from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.sections.attack_curves import relearn_frame
from sae_unlearn.reporting.sections.attack_summary import (
    attack_rows,
    strongest_attack,
    summary_table,
)
from sae_unlearn.reporting.sections.attacks import attacks_section, gcg_budget_frame

FAMILIES = {
    "fewshot": {
        "baseline": {"k=0": {"acc": 0.8, "acc_ci": [0.7, 0.9], "gate_share": None}},
        "steered": {"k=0": {"acc": 0.4, "acc_ci": [0.3, 0.5], "gate_share": 0.9}},
        "n": 68,
    },
    # the search's figures (no accuracy of a setting) stay out of the summary
    "gcg": {
        "steered": {"suffix": {"acc": 0.45, "acc_ci": [0.35, 0.55], "gate_share": 0.5}},
        "n": 68,
        "n_targets": 3,
        "search": {"steered": {"final_loss": 1.5, "acc_by_step": {"0": 0.4, "8": 0.45}}},
    },
    "evasion": {
        "baseline": {"synonyms": {"acc": 0.7, "acc_ci": [0.6, 0.8], "gate_share": None}},
        "steered": {"synonyms": {"acc": 0.5, "acc_ci": [0.4, 0.6], "gate_share": 0.75}},
        "n": 68,
    },
    "whitebox": {
        "baseline": {"none": {"acc": 0.8, "acc_ci": [0.7, 0.9], "gate_share": None}},
        "steered": {
            "none": {"acc": 0.4, "acc_ci": [0.3, 0.5], "gate_share": None},
            "soft_prompt": {"acc": 0.6, "acc_ci": [0.5, 0.7], "gate_share": None},
        },
        "recovery": {"soft_prompt": 0.5},
    },
    # no accuracy per setting: its shares have a table of their own
    "generation": {
        "fluency": {"steered": {"plain": {"fluent_share": 0.5, "leak_share": 0.25}}},
        "n_prompts": 8,
    },
}


def inputs() -> ReportInputs:
    return ReportInputs(attack_families=FAMILIES)


def test_attack_rows_cover_every_family_and_model():
    rows = attack_rows(inputs())
    labels = rows[rows["model"] == "steered"]["label"].tolist()
    assert labels == [
        "fewshot: k=0",
        "gcg: suffix",
        "evasion: synonyms",
        "whitebox: none",
        "whitebox: soft_prompt",
    ]
    assert set(rows["family"]) == {"fewshot", "gcg", "evasion", "whitebox"}
    base_k0, steered_k0 = rows[rows["label"] == "fewshot: k=0"]["gate_share"].tolist()
    assert pd.isna(base_k0) and steered_k0 == 0.9
    soft = rows[rows["label"] == "whitebox: soft_prompt"].iloc[0]
    assert (soft["acc"], soft["acc_lo"], soft["acc_hi"], soft["recovery"]) == (0.6, 0.5, 0.7, 0.5)


def test_summary_table_pairs_models_per_setting():
    table = summary_table(attack_rows(inputs()))
    assert table.headers[-2:] == ["gate open", "recovery"]
    by_setting = {(r[0], r[1]): r for r in table.rows}
    assert by_setting[("evasion", "synonyms")][2:] == [
        "0.700 [0.600, 0.800]",
        "0.500 [0.400, 0.600]",
        "0.750",
        "–",
    ]
    assert by_setting[("gcg", "suffix")][2] == "–"  # no baseline figure given
    assert by_setting[("whitebox", "soft_prompt")][-1] == "0.500"


def test_strongest_attack_is_the_highest_steered_accuracy():
    text = strongest_attack(attack_rows(inputs()))
    assert text == "strongest: whitebox: soft_prompt 0.600"  # no baseline soft_prompt row
    rows = attack_rows(ReportInputs(attack_families={"evasion": FAMILIES["evasion"]}))
    assert strongest_attack(rows) == "strongest: evasion: synonyms 0.500 (baseline 0.700)"


def test_relearn_frame_reads_steps_in_order():
    metrics = {
        "baseline": {
            "step=4": {"acc": 0.9, "retain_acc": 0.8},
            "step=0": {"acc": 0.8, "retain_acc": 0.8},
        },
        "steered": {
            "step=0": {"acc": 0.4, "retain_acc": 0.8},
            "step=4": {"acc": 0.7, "retain_acc": 0.7},
        },
        "n": 68,
    }
    frame = relearn_frame(metrics)
    assert frame["step"].tolist() == [0, 4]
    assert frame["steered forget"].tolist() == [0.4, 0.7]
    assert frame["baseline retain"].tolist() == [0.8, 0.8]


def test_gcg_budget_frame():
    search = {
        "steered": {"acc_by_step": {"0": 0.4, "10": 0.5, "5": 0.45}, "final_loss": 1.0},
        "baseline": {"final_loss": 0.5},
    }
    frame = gcg_budget_frame(search)
    assert frame["step"].tolist() == [0, 5, 10]
    assert frame["steered"].tolist() == [0.4, 0.45, 0.5]
    assert "baseline" not in frame


def test_attacks_section_with_some_families_missing_still_shows_the_others(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    relearn = {
        "baseline": {"step=0": {"acc": 0.8, "acc_ci": [0.7, 0.9], "retain_acc": 0.8}},
        "steered": {"step=0": {"acc": 0.4, "acc_ci": [0.3, 0.5], "retain_acc": 0.8}},
    }
    families = {k: FAMILIES[k] for k in ("evasion", "whitebox")} | {"relearn": relearn}
    sources = {"attack_gcg": "metrics/attack_gcg.json", "attack_icl": "metrics/attack_icl.json"}
    report_inputs = ReportInputs(attack_families=families, sources=sources)
    section, data = attacks_section(report_inputs, ReportOptions(), plots, "plots")
    titles = [p.title for p in section.parts]
    assert titles == ["Summary: forget accuracy under every attack", "Relearning by fine-tuning"]
    assert (plots / "attack_summary.png").exists() and (plots / "relearn.png").exists()
    assert set(data) == {"attack_summary.csv", "relearn.csv"}
    # icl's and gcg's metrics are missing, and the section says so
    assert [n[1] for n in section.notes] == [
        ("code", "metrics/attack_icl.json"),
        ("code", "metrics/attack_gcg.json"),
    ]
    assert isinstance(data["attack_summary.csv"], pd.DataFrame)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_gate_share_prints_a_dash(value):
    rows = attack_rows(inputs())
    rows.loc[rows["label"] == "evasion: synonyms", "gate_share"] = value
    table = summary_table(rows)
    assert {r[4] for r in table.rows if r[1] == "synonyms"} == {"–"}
