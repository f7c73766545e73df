"""Which questions a metrics file was scored on: a fingerprint per role.

Alignment divides steered accuracy by the baseline's; a baseline scored on other questions
(last week's set, another file) gives a number that looks right and means nothing. Each role's
metrics carry the count and a hash of its normalised questions, and evaluate refuses a baseline
whose fingerprints differ from the questions it is about to score.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pandas as pd

from sae_unlearn.data.schema import normalised_text
from sae_unlearn.errors import UserError


def question_fingerprint(questions: pd.DataFrame) -> dict:
    """{"n", "sha256"} of the questions in order: each question's text, choices and answer,
    with whitespace and case normalised (a re-saved file with other line breaks matches)."""
    digest = hashlib.sha256()
    for question, choices, answer in zip(
        questions["question"], questions["choices"], questions["answer"], strict=True
    ):
        record = [normalised_text(question), [normalised_text(c) for c in choices], int(answer)]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return {"n": int(len(questions)), "sha256": digest.hexdigest()}


def check_baseline_fingerprints(
    baseline: Mapping, sets: Mapping[str, pd.DataFrame], source: str
) -> None:
    """Refuse a baseline (metrics JSON) scored on other questions than `sets`, role by role;
    a role the baseline lacks is left out of alignment, not refused."""
    for role, questions in sets.items():
        if role not in baseline:
            continue
        recorded = (baseline.get(role) or {}).get("fingerprint")
        if recorded is None:
            raise UserError(
                f"{source} has no question fingerprint for {role} (written before fingerprints). "
                "Fix: rerun `sae-unlearn evaluate-baseline`, or pass --baseline none"
            )
        now = question_fingerprint(questions)
        if recorded != now:
            raise UserError(
                f"{source} was scored on other {role} questions ({recorded.get('n')} questions, "
                f"hash {str(recorded.get('sha256'))[:12]}) than the {now['n']} given now (hash "
                f"{now['sha256'][:12]}). Fix: rerun `sae-unlearn evaluate-baseline` on these "
                "questions, or pass the baseline made for them (--baseline)"
            )
