"""The unattacked reference read from the evaluation's per-question results: the rows of the
scored questions in their order, refused when a question has no result."""

import pandas as pd
import pytest

from sae_unlearn.attacks.reference import check_evaluation, no_attack, reference_results
from sae_unlearn.errors import MissingInputError, UserError
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from tests.evaluation.helpers import questions


def results(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["question", "subject", "answer"]].copy()
    out["correct"] = [i % 2 == 0 for i in range(len(frame))]
    out["correct_norm"] = out["correct"]
    out["gate_opened"] = [i % 3 == 0 for i in range(len(frame))]
    return out


def test_rows_of_the_scored_questions_in_their_order(tmp_path):
    qs = questions(6)
    results(qs).to_parquet(tmp_path / "forget.parquet")
    scored = qs.iloc[[4, 1, 3]].reset_index(drop=True)
    frame = reference_results(tmp_path, "forget", scored)
    assert frame["question"].tolist() == scored["question"].tolist()
    assert frame["correct"].tolist() == [True, False, False]  # rows 4, 1, 3
    assert frame["gate_opened"].tolist() == [False, False, True]


def test_a_question_without_a_result_is_refused_with_the_fix(tmp_path):
    qs = questions(6)
    results(qs.iloc[:5]).to_parquet(tmp_path / "forget.parquet")
    with pytest.raises(UserError, match="no result for 1 of the 6 questions.*evaluate"):
        reference_results(tmp_path, "forget", qs)
    other_answer = qs.copy()
    other_answer.loc[0, "answer"] = (qs.loc[0, "answer"] + 1) % 4
    results(qs).to_parquet(tmp_path / "forget.parquet")
    with pytest.raises(UserError, match="made on other questions"):
        reference_results(tmp_path, "forget", other_answer)


def test_missing_results_and_missing_columns_are_refused(tmp_path):
    with pytest.raises(MissingInputError, match="no evaluation results"):
        reference_results(tmp_path, "forget", questions(2))
    results(questions(2)).drop(columns="correct").to_parquet(tmp_path / "forget.parquet")
    with pytest.raises(UserError, match=r"lacks the columns \['correct'\]"):
        reference_results(tmp_path, "forget", questions(2))


def test_no_attack_picks_the_model_and_role():
    frame = pd.DataFrame({"correct": [True]})
    reference = {"steered": {"forget": frame}}
    assert no_attack(reference, "steered") is frame
    assert no_attack(reference, "baseline") is None
    assert no_attack(reference, "steered", "retain") is None
    assert no_attack(None, "steered") is None


def test_an_evaluation_of_another_format_or_question_file_is_refused():
    qs = questions(4)
    metrics = {"format": "cloze", "forget": {"fingerprint": question_fingerprint(qs)}}
    check_evaluation(metrics, "metrics/steered.json", "cloze", {"forget": qs})
    with pytest.raises(UserError, match="scored in 'cloze' format, but the attack scores 'letter'"):
        check_evaluation(metrics, "metrics/steered.json", "letter", {"forget": qs})
    other_choices = qs.copy()
    other_choices.at[0, "choices"] = ["a", "b", "c", "d"]
    with pytest.raises(UserError, match="other forget questions.*evaluate"):
        check_evaluation(metrics, "metrics/steered.json", "cloze", {"forget": other_choices})
