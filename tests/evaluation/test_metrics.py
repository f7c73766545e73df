import numpy as np
import pandas as pd
import pytest

from sae_unlearn.evaluation.metrics import (
    accuracy_summary,
    add_alignment,
    alignment_score,
    bootstrap_ci,
    retention_ratio,
    role_summary,
    split_summaries,
)


def test_accuracy_summary_and_intervals():
    frame = pd.DataFrame(
        {
            "subject": ["a"] * 4 + ["b"] * 6,
            "correct": [1, 1, 1, 0, 1, 0, 0, 0, 0, 0],
            "correct_norm": [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
        }
    )
    s = accuracy_summary(frame, n_boot=2000, seed=1)
    assert s["acc"] == pytest.approx(0.4) and s["n"] == 10
    assert s["acc_norm"] == pytest.approx(0.6)
    assert s["by_subject"]["a"]["acc"] == pytest.approx(0.75)
    assert s["by_subject"]["b"]["n"] == 6
    lo, hi = s["acc_ci"]
    assert 0.0 <= lo < 0.4 < hi <= 1.0
    assert bootstrap_ci(np.ones(20)) == [1.0, 1.0]
    assert bootstrap_ci(np.r_[np.ones(10), np.zeros(10)], seed=3) == bootstrap_ci(
        np.r_[np.ones(10), np.zeros(10)], seed=3
    )


def test_alignment_matches_paper_formula():
    # Paper's refusal-clamp: WMDP-bio 0.5860 -> 0.2718 with retain kept: 1 - 0.0218/0.336
    assert retention_ratio(0.2718, 0.5860) == pytest.approx(0.0218 / 0.3360, rel=1e-6)
    assert alignment_score(0.2718, 0.5860, 0.60, 0.60) == pytest.approx(1 - 0.0218 / 0.3360)
    assert retention_ratio(0.9, 0.8) == 1.0  # capped at 1
    assert retention_ratio(0.1, 0.8) == pytest.approx(1e-3 / 0.55)  # below chance floors at eps
    assert alignment_score(0.8, 0.8, 0.5, 0.8) == pytest.approx(0.0)


def test_add_alignment_against_the_baseline():
    baseline = {"forget": {"acc": 0.586}, "retain": {"acc": 0.60}}
    steered = add_alignment({"forget": {"acc": 0.30}, "retain": {"acc": 0.597}}, baseline, "acc")
    # R_forget = (0.30 - 0.25) / (0.586 - 0.25); R_retain = 0.347 / 0.35.
    assert steered["r_forget"] == pytest.approx(0.05 / 0.336)
    assert steered["r_retain"] == pytest.approx(0.347 / 0.35)
    assert steered["alignment"] == pytest.approx(0.347 / 0.35 * (1 - 0.05 / 0.336))
    assert steered["retain_ratio"] == pytest.approx(0.995)
    assert steered["forget_ratio"] == pytest.approx(0.30 / 0.586)
    assert steered["primary_metric"] == "acc" and steered["retain_kept_99"] is True
    dropped = add_alignment({"forget": {"acc": 0.3}, "retain": {"acc": 0.5}}, baseline, "acc")
    assert dropped["retain_kept_99"] is False
    empty = {"forget": {"acc": 0.0}, "retain": {"acc": 0.0}}
    assert np.isnan(add_alignment(dict(empty), empty, "acc")["retain_ratio"])


def test_dev_and_test_halves_next_to_the_pooled_figures():
    frame = pd.DataFrame(
        {
            "subject": ["a"] * 4 + ["b"] * 6,
            "split": ["dev", "test", "dev", "test", "dev", "dev", "test", "test", "dev", "test"],
            "correct": [1, 1, 1, 0, 1, 0, 0, 0, 0, 0],
            "correct_norm": [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
        }
    )
    halves = split_summaries(frame, n_boot=200, seed=1)
    # dev rows 1, 3, 5, 6, 9: correct 1, 1, 1, 0, 0; test rows 2, 4, 7, 8, 10: 1, 0, 0, 0, 0.
    assert halves["dev"]["acc"] == pytest.approx(0.6) and halves["dev"]["n"] == 5
    assert halves["test"]["acc"] == pytest.approx(0.2) and halves["test"]["n"] == 5
    assert halves["dev"]["acc_norm"] == pytest.approx(0.8)
    assert halves["test"]["acc_norm"] == pytest.approx(0.4)
    assert "by_subject" not in halves["dev"]
    summary = role_summary(frame, n_boot=200, seed=1)
    # The pooled figures stay exactly what accuracy_summary gives; the halves come after.
    assert list(summary) == [
        "acc", "acc_ci", "acc_norm", "acc_norm_ci", "n", "by_subject", "dev", "test"
    ]  # fmt: skip
    assert {k: summary[k] for k in list(summary)[:6]} == accuracy_summary(frame, 200, 1)
    assert split_summaries(frame.assign(split="dev"))["test"] == {"n": 0}


def test_alignment_near_uses_retain_near_in_place_of_retain():
    baseline = {
        "forget": {"acc": 0.75, "dev": {"acc": 0.8, "n": 5}, "test": {"acc": 0.7, "n": 5}},
        "retain": {"acc": 0.65, "dev": {"acc": 0.65, "n": 4}, "test": {"acc": 0.65, "n": 4}},
        "retain_near": {"acc": 0.85, "dev": {"acc": 0.9, "n": 3}, "test": {"n": 0}},
    }
    steered = {
        "forget": {"acc": 0.35, "dev": {"acc": 0.3, "n": 5}, "test": {"acc": 0.4, "n": 5}},
        "retain": {"acc": 0.65, "dev": {"acc": 0.65, "n": 4}, "test": {"acc": 0.65, "n": 4}},
        "retain_near": {"acc": 0.55, "dev": {"acc": 0.5, "n": 3}, "test": {"n": 0}},
    }
    out = add_alignment(steered, baseline, "acc")
    # R_forget = 0.10 / 0.50 = 0.2; R_retain = 1; R_retain_near = 0.30 / 0.60 = 0.5.
    assert out["alignment"] == pytest.approx(0.8)
    assert out["alignment_near"] == pytest.approx(0.5 * 0.8)
    assert out["retain_near_ratio"] == pytest.approx(0.55 / 0.85)
    assert out["r_retain_near"] == pytest.approx(0.5)
    # dev: R_forget = 0.05 / 0.55; R_near = 0.25 / 0.65. test: R_forget = 0.15 / 0.45, and
    # retain_near has no test questions, so no alignment_near there.
    assert out["dev"]["alignment"] == pytest.approx(1 - 0.05 / 0.55)
    assert out["dev"]["alignment_near"] == pytest.approx(0.25 / 0.65 * (1 - 0.05 / 0.55))
    assert out["dev"]["retain_near_ratio"] == pytest.approx(0.5 / 0.9)
    assert out["test"] == {"alignment": pytest.approx(1 - 0.15 / 0.45), "retain_ratio": 1.0}
    keys = list(out)
    assert keys.index("retain_kept_99") < keys.index("alignment_near") < keys.index("dev")


def test_two_roles_give_no_near_keys():
    baseline = {"forget": {"acc": 0.586}, "retain": {"acc": 0.60}}
    out = add_alignment({"forget": {"acc": 0.3}, "retain": {"acc": 0.6}}, baseline, "acc")
    assert not {"alignment_near", "retain_near_ratio", "r_retain_near", "dev", "test"} & set(out)
