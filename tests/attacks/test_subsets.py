from sae_unlearn.attacks.subsets import deterministic_subset
from tests.evaluation.helpers import questions


def test_deterministic_subset_keeps_order():
    frame = questions(10)
    sub = deterministic_subset(frame, 4, seed=3)
    assert len(sub) == 4 and sub.equals(deterministic_subset(frame, 4, seed=3))
    positions = [frame.index[frame["question"] == q][0] for q in sub["question"]]
    assert positions == sorted(positions)
    assert len(deterministic_subset(frame, None, 0)) == 10
