import numpy as np
import pandas as pd
import pytest

from sae_unlearn.evaluation.metrics import (
    accuracy_summary,
    add_alignment,
    alignment_score,
    bootstrap_ci,
    retention_ratio,
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
