"""SAEBench's view of unlearning: accuracy on the questions the baseline model knows.

A question is *known* when the unsteered model answers it correctly (`acc`, not `acc_norm`):
in cloze format, correct in the baseline's own results; in letter format, correct under every
one of the 24 orderings of its choices, so a model that always answers "A" knows nothing
(SAEBench's unlearning eval, after Farrell et al. 2024). The steered model's known-correct
accuracy is its accuracy on those questions, in their original order; the baseline's is 1 by
construction, so it reports how many questions are known.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.metrics import bootstrap_ci

N_CHOICES = 4
ORDERINGS = tuple(permutations(range(N_CHOICES)))  # 24; the first is the original order


def permuted_questions(questions: pd.DataFrame) -> pd.DataFrame:
    """Every question under every ordering of its choices, question by question.

    Ordering `p` shows original choice `p[j]` at position `j`, so the answer moves to
    `p.index(answer)`; `qid` is the question's row and `ordering` the ordering's index.
    """
    rows = []
    for qid, q in enumerate(questions.itertuples(index=False)):
        choices = list(q.choices)
        if len(choices) != N_CHOICES:
            raise UserError(
                f"row {qid + 1} has {len(choices)} choices; the permutation check needs 4"
            )
        for k, order in enumerate(ORDERINGS):
            rows.append(
                {
                    "question": q.question,
                    "choices": [choices[i] for i in order],
                    "answer": order.index(int(q.answer)),
                    "subject": q.subject,
                    "qid": qid,
                    "ordering": k,
                }
            )
    return pd.DataFrame(rows)


def known_under_all_orderings(permuted_results: pd.DataFrame, n_questions: int) -> np.ndarray:
    """Known per question: correct under all of its orderings (rows as `permuted_questions`)."""
    correct = permuted_results["correct"].to_numpy(bool)
    if len(correct) != n_questions * len(ORDERINGS):
        raise ValueError(
            f"{len(correct)} results for {n_questions} questions x {len(ORDERINGS)} orderings"
        )
    return correct.reshape(n_questions, len(ORDERINGS)).all(axis=1)


def baseline_known_summary(known: np.ndarray) -> dict:
    """How many questions the baseline knows, and their share of the set."""
    known = np.asarray(known, dtype=bool)
    return {"n": int(known.sum()), "share": float(known.mean()) if len(known) else 0.0}


def known_correct_summary(
    steered_correct: np.ndarray, known: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict:
    """The steered model's accuracy on the known questions, with its bootstrap interval."""
    correct = np.asarray(steered_correct, dtype=bool)
    known = np.asarray(known, dtype=bool)
    if len(correct) != len(known):
        raise UserError(f"{len(correct)} steered results for {len(known)} baseline results")
    kept = correct[known].astype(float)
    summary = baseline_known_summary(known)
    if not len(kept):
        return summary
    return {"acc": float(kept.mean()), "acc_ci": bootstrap_ci(kept, n_boot, seed), **summary}
