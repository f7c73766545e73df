"""The report's constants agree with the evaluation code and the paper."""

from __future__ import annotations

import pytest

from sae_unlearn.reporting import constants


def test_chance_matches_evaluation():
    from sae_unlearn.evaluation import CHANCE

    assert constants.CHANCE == CHANCE
    # The derived paper point reproduces the paper's alignment.
    from sae_unlearn.evaluation import alignment_score

    score = alignment_score(
        constants.PAPER_FORGET_STEERED,
        constants.PAPER_FORGET_BASELINE,
        constants.PAPER_RETAIN_STEERED,
        constants.PAPER_RETAIN_BASELINE,
    )
    assert score == pytest.approx(constants.PAPER_ALIGNMENT, abs=1e-9)


def test_roles_match_evaluation():
    from sae_unlearn.evaluation import EVAL_ROLES

    assert constants.ROLES == EVAL_ROLES
    assert "forget" not in constants.BENIGN_ROLES and len(constants.BENIGN_ROLES) == 4
