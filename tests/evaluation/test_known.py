"""SAEBench's known questions: the letter-format permutation check and known-correct accuracy."""

import numpy as np
import pandas as pd
import pytest

from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.known import (
    ORDERINGS,
    baseline_known_summary,
    known_correct_summary,
    known_under_all_orderings,
    permuted_questions,
)
from sae_unlearn.evaluation.run import (
    add_baseline_known,
    add_steered_known,
    evaluate_questions,
    evaluate_sets,
)
from tests.evaluation.helpers import QUESTIONS

TWO = pd.DataFrame(
    {
        "question": ["Which insect spreads malaria?", "What do B cells make?"],
        "choices": [
            ["bees", "mosquitoes", "ants", "moths"],
            ["bone", "hair", "sugar", "antibodies"],
        ],
        "answer": [1, 3],
        "subject": ["virology", "immunology"],
    }
)


def test_permuted_questions_move_the_answer_with_its_text():
    frame = permuted_questions(TWO)
    assert len(ORDERINGS) == 24 and len(frame) == 48
    assert frame["qid"].tolist() == [0] * 24 + [1] * 24
    assert ORDERINGS[0] == (0, 1, 2, 3)
    first = frame.iloc[0]
    assert (
        list(first["choices"]) == ["bees", "mosquitoes", "ants", "moths"] and first["answer"] == 1
    )
    # Ordering 23 is (3, 2, 1, 0): reversed, so "mosquitoes" sits at position 2.
    assert ORDERINGS[23] == (3, 2, 1, 0)
    last = frame.iloc[23]
    assert list(last["choices"]) == ["moths", "ants", "mosquitoes", "bees"] and last["answer"] == 2
    for row in frame.itertuples():
        assert row.choices[row.answer] == TWO["choices"][row.qid][TWO["answer"][row.qid]]
    # Each question's answer sits at each position in exactly 6 orderings.
    counts = frame.groupby("qid")["answer"].value_counts().unstack()
    assert (counts == 6).all().all()


def test_known_needs_every_ordering_right():
    frame = permuted_questions(TWO)
    # A model that always answers "A" is right on 6 of each question's 24 orderings: unknown.
    always_a = frame.assign(correct=frame["answer"] == 0)
    assert known_under_all_orderings(always_a, 2).tolist() == [False, False]
    # One that follows the answer's text knows both; one slip on the second unknows it.
    follows = frame.assign(correct=True)
    assert known_under_all_orderings(follows, 2).tolist() == [True, True]
    slip = follows.copy()
    slip.loc[30, "correct"] = False
    assert known_under_all_orderings(slip, 2).tolist() == [True, False]
    with pytest.raises(ValueError, match="47 results for 2 questions x 24 orderings"):
        known_under_all_orderings(follows.iloc[:47], 2)


def test_known_correct_accuracy_on_a_hand_made_case():
    # The baseline knows questions 1, 3 and 4; steered, only question 3 of them stays right
    # (question 2 was unknown, so its steered answer does not count).
    known = np.array([True, False, True, True])
    steered = np.array([False, True, True, False])
    summary = known_correct_summary(steered, known, n_boot=200, seed=0)
    assert summary["acc"] == pytest.approx(1 / 3)
    assert summary["n"] == 3 and summary["share"] == pytest.approx(0.75)
    assert 0.0 <= summary["acc_ci"][0] <= 1 / 3 <= summary["acc_ci"][1] <= 1.0
    assert baseline_known_summary(known) == {"n": 3, "share": 0.75}
    # Nothing known: no accuracy to report, only the count.
    assert known_correct_summary(steered, np.zeros(4, bool)) == {"n": 0, "share": 0.0}


def test_add_steered_known_reads_the_baselines_marks():
    steered = pd.DataFrame(
        {"question": ["a", "b", "c", "d"], "correct": [False, True, True, False]}
    )
    baseline = pd.DataFrame({"question": ["a", "b", "c", "d"], "known": [True, False, True, True]})
    metrics = {"forget": {"acc": 0.5}}
    add_steered_known(
        {"forget": steered}, {"forget": (baseline, "b.parquet")}, metrics, EvalConfig()
    )
    assert metrics["forget"]["known_correct"]["acc"] == pytest.approx(1 / 3)
    assert metrics["forget"]["known_correct"]["n"] == 3
    other = baseline.assign(question=["a", "b", "x", "d"])
    with pytest.raises(
        ValueError, match=r"b.parquet holds 4 results for other questions than the 4"
    ):
        add_steered_known({"forget": steered}, {"forget": (other, "b.parquet")}, {}, EvalConfig())
    with pytest.raises(ValueError, match="no `known` column; rerun evaluate-baseline"):
        add_steered_known(
            {"forget": steered},
            {"forget": (baseline.drop(columns="known"), "b.parquet")},
            {},
            EvalConfig(),
        )


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
def test_baseline_marks_known_questions(tiny_model, fmt):
    model, tokenizer = tiny_model
    cfg = EvalConfig(format=fmt, batch_size=16, bootstrap=20)
    sets = {"forget": QUESTIONS}
    results, metrics = evaluate_sets(model, tokenizer, sets, cfg)
    add_baseline_known(model, tokenizer, sets, results, metrics, cfg)
    known = results["forget"]["known"].to_numpy(bool)
    if fmt == "cloze":
        assert known.tolist() == results["forget"]["correct"].tolist()
    else:
        # The random tiny model answers by position, whatever the choices say: each question
        # is right in exactly the 6 orderings that put its answer there, so none is known.
        scored = evaluate_questions(model, tokenizer, permuted_questions(QUESTIONS), cfg)
        assert scored["correct"].to_numpy().reshape(len(QUESTIONS), 24).sum(1).tolist() == [6] * 5
        assert known.tolist() == [False] * 5
    assert metrics["forget"]["known_correct"] == {
        "n": int(known.sum()),
        "share": pytest.approx(known.mean()),
    }
