"""The per-question results frame: log-likelihoods, chosen answers and correctness; reading
a stage's results back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sae_unlearn.evaluation.requests import Request


def results_frame(
    questions: pd.DataFrame, requests: Sequence[Request], loglik: Sequence[Sequence[float]]
) -> pd.DataFrame:
    """Per-question results from the choices' log-likelihoods: chosen (acc, acc_norm), correct.

    `acc_norm` divides each log-likelihood by its answer choice's length in characters, as
    lm-eval does (`Request.choice_chars`: the letter's in letter format).
    """
    rows = []
    for q, r, ll in zip(questions.itertuples(index=False), requests, loglik, strict=True):
        ll_arr = np.asarray(ll, dtype=float)
        chosen = int(ll_arr.argmax())
        chosen_norm = int((ll_arr / np.asarray(r.choice_chars)).argmax())
        answer = int(q.answer)
        rows.append(
            {
                "question": q.question,
                "subject": q.subject,
                "answer": answer,
                "loglik": [float(x) for x in ll_arr],
                "chosen": chosen,
                "chosen_norm": chosen_norm,
                "correct": chosen == answer,
                "correct_norm": chosen_norm == answer,
            }
        )
    return pd.DataFrame(rows)


def read_role_results(folder: Path, roles: Sequence[str]) -> dict[str, tuple[pd.DataFrame, str]]:
    """The per-question results `{role}.parquet` in `folder` of each role that has them,
    with the path they came from."""
    out = {}
    for role in roles:
        path = Path(folder) / f"{role}.parquet"
        if path.is_file():
            out[role] = (pd.read_parquet(path), str(path))
    return out
