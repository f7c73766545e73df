"""Question fingerprints: normalised text, choices and answer, in order; the baseline check."""

from __future__ import annotations

import pytest

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.fingerprint import check_baseline_fingerprints, question_fingerprint
from tests.evaluation.helpers import questions


def test_fingerprint_ignores_spacing_and_case_but_not_content():
    frame = questions(4)
    base = question_fingerprint(frame)
    assert base["n"] == 4 and len(base["sha256"]) == 64
    respaced = frame.assign(question=[f" {q.upper()}\n\n" for q in frame["question"]])
    assert question_fingerprint(respaced) == base
    for change in (
        frame.assign(answer=[(a + 1) % 4 for a in frame["answer"]]),
        frame.assign(choices=[list(reversed(c)) for c in frame["choices"]]),
        frame.iloc[::-1].reset_index(drop=True),
        frame.iloc[:3],
    ):
        assert question_fingerprint(change) != base


def test_baseline_check_by_role():
    sets = {"forget": questions(3), "retain": questions(2, "geography")}
    baseline = {role: {"fingerprint": question_fingerprint(q)} for role, q in sets.items()}
    check_baseline_fingerprints(baseline, sets, "b.json")
    # A role the baseline never scored is left out of alignment, not refused.
    check_baseline_fingerprints(baseline, sets | {"retain_near": questions(2)}, "b.json")
    with pytest.raises(UserError, match="b.json was scored on other retain questions"):
        check_baseline_fingerprints(
            baseline, sets | {"retain": questions(3, "geography")}, "b.json"
        )
    with pytest.raises(UserError, match="no question fingerprint for forget"):
        check_baseline_fingerprints({"forget": {"acc": 0.5}}, sets, "b.json")
