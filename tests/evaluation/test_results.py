import pandas as pd

from sae_unlearn.evaluation.requests import Request
from sae_unlearn.evaluation.results import results_frame


def test_results_frame_acc_and_acc_norm_by_hand():
    questions = pd.DataFrame(
        {
            "question": ["q"],
            "choices": [["a", "bbbbbbbbbb", "c", "d"]],
            "answer": [1],
            "subject": ["s"],
        }
    )
    request = Request("Question: q\nAnswer:", (" a", " bbbbbbbbbb", " c", " d"), (1, 10, 1, 1))
    frame = results_frame(questions, [request], [[-1.0, -2.0, -0.5, -3.0]])
    row = frame.iloc[0]
    # acc picks -0.5; acc_norm divides by character length: -2.0 / 10 = -0.2 wins.
    assert row["chosen"] == 2 and not row["correct"]
    assert row["chosen_norm"] == 1 and row["correct_norm"]
    assert row["loglik"] == [-1.0, -2.0, -0.5, -3.0]
    assert list(frame.columns) == [
        "question",
        "subject",
        "answer",
        "loglik",
        "chosen",
        "chosen_norm",
        "correct",
        "correct_norm",
    ]
