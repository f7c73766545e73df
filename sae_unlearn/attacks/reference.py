"""Each attack's no-attack reference: the evaluation stage's per-question results for the
questions an attack scores.

Every family compares its attacked accuracy with the same questions unattacked. Reading
that from `evaluate-baseline` / `evaluate` (the same model, format and clamp) instead of
scoring it again in each family saves one pass per family and model, and makes every
family's reference row the evaluation's own figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from sae_unlearn.errors import MissingInputError, UserError, read_input
from sae_unlearn.evaluation.fingerprint import question_fingerprint

KEY = ["question", "subject", "answer"]


def reference_results(folder: str | Path, role: str, questions: pd.DataFrame) -> pd.DataFrame:
    """The rows of `folder/{role}.parquet` for `questions`, in their order; refused when any
    question is missing (results of other questions, or of an older question set)."""
    path = Path(folder) / f"{role}.parquet"
    fix = "run `sae-unlearn evaluate-baseline` and `sae-unlearn evaluate` first (dvc repro does)"
    if not path.is_file():
        raise MissingInputError(f"no evaluation results at {path}. Fix: {fix}")
    frame = read_input(path, pd.read_parquet, "evaluation results", fix)
    missing_cols = [c for c in [*KEY, "correct", "correct_norm"] if c not in frame.columns]
    if missing_cols:
        raise UserError(f"{path} lacks the columns {missing_cols}. Fix: {fix}")
    frame = frame.drop_duplicates(subset=KEY).set_index(KEY)
    wanted = pd.MultiIndex.from_frame(questions[KEY].astype({"answer": int}))
    absent = ~wanted.isin(frame.index)
    if absent.any():
        first = questions["question"].iloc[int(absent.argmax())]
        raise UserError(
            f"{path} has no result for {int(absent.sum())} of the {len(questions)} questions "
            f"the attack scores (first: {first[:60]!r}): it was made on other questions. "
            f"Fix: {fix}"
        )
    return frame.loc[wanted].reset_index()


def no_attack(reference: Mapping | None, model: str, role: str = "forget") -> pd.DataFrame | None:
    """`reference[model][role]` (the unattacked results), or None where none was given."""
    return ((reference or {}).get(model) or {}).get(role)


def check_evaluation(
    metrics: Mapping, source: str, fmt: str, question_sets: Mapping[str, pd.DataFrame]
) -> None:
    """The evaluation's metrics (`source`) must be of the attack's format and of the whole
    question files the attack draws from (their fingerprints), or its per-question results
    are another evaluation's."""
    fix = "rerun `sae-unlearn evaluate-baseline` and `sae-unlearn evaluate` (dvc repro does)"
    if metrics.get("format") != fmt:
        raise UserError(
            f"{source} was scored in {metrics.get('format')!r} format, but the attack scores "
            f"{fmt!r}. Fix: {fix}"
        )
    for role, questions in question_sets.items():
        recorded = (metrics.get(role) or {}).get("fingerprint")
        if recorded != question_fingerprint(questions):
            raise UserError(
                f"{source} was scored on other {role} questions than the attack's "
                f"({len(questions)} questions). Fix: {fix}"
            )


def unattacked(
    reference: Mapping | None, model: str, score: Callable[[], pd.DataFrame]
) -> pd.DataFrame:
    """The unattacked forget results of `model`: the given reference, else `score()`."""
    given = no_attack(reference, model)
    return given if given is not None else score()
