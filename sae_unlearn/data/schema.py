"""The prepared data schema: question and corpus columns, validation, normalisation.

Questions follow the `cais/wmdp` schema (`question`, `choices` x4, `answer` 0..3) plus `subject`;
corpora are documents with a `text` column. Every input is validated before anything is written,
so a malformed row fails here, with its file and row named, instead of as a silent accuracy
change in a later stage.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sae_unlearn.errors import UserError

# Every run has a forget and a retain role; `retain_near` (benign knowledge next to the forget
# topic) is optional, so a run without it is exactly the two-role run.
ROLES = ("forget", "retain")
OPTIONAL_ROLES = ("retain_near",)
ALL_ROLES = ROLES + OPTIONAL_ROLES
N_CHOICES = 4
QUESTION_COLUMNS = ("question", "choices", "answer", "subject")
CORPUS_COLUMNS = ("text", "source")


class DataError(UserError):
    """A data input that cannot be used; the message names the file, the row and the fix."""


def _row_error(source: str, row: int, problem: str, fix: str) -> DataError:
    # Rows are 1-based data records (the header of a CSV is not counted), as editors show them.
    return DataError(f"{source}: row {row + 1}: {problem}. Fix: {fix}.")


def is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_missing(value: Any) -> bool:
    # A key absent from some records shows up as NaN in an object-dtype frame.
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_list(value: Any) -> list[Any] | None:
    # pyarrow/datasets hand list columns back as numpy arrays; JSON gives lists.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return list(value)
    return None


def _require_columns(frame: pd.DataFrame, source: str, required: Sequence[str], fix: str) -> None:
    # An empty file has no columns either; say it is empty rather than list every column.
    if len(frame) == 0:
        raise DataError(f"{source}: has no rows. Fix: add at least one row.")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing} (found {list(frame.columns)}). Fix: {fix}."
        )


def normalised_text(text: object) -> str:
    """Text compared as a reader sees it: whitespace runs collapsed, case folded (the one
    normalisation of repeated choices and of question fingerprints)."""
    return " ".join(str(text).split()).casefold()


def _refuse_repeated_choices(items: list, source: str, row: int) -> None:
    # Two equal options make the question ambiguous and its accuracy meaningless: a model
    # choosing the "wrong" copy of the right answer scores 0.
    first: dict[str, int] = {}
    for i, choice in enumerate(items):
        key = normalised_text(choice)
        if key in first:
            raise _row_error(
                source,
                row,
                f"choices {first[key]} and {i} repeat ({choice!r}, ignoring case and spacing)",
                "make the four choices distinct",
            )
        first[key] = i


def validate_questions(frame: pd.DataFrame, source: str, *, unique: bool = True) -> None:
    """Refuse a question frame that is not in the `cais/wmdp` schema plus `subject`.

    `unique=False` is for hub benchmarks, whose row set must stay exactly as lm-eval scores it
    (duplicate rows and repeated choices included); local files must have distinct choices.
    A duplicate is the same question text with the same choices: benchmarks legitimately reuse
    stems such as "Which of the following is true?" with different options.
    """
    _require_columns(
        frame,
        source,
        QUESTION_COLUMNS,
        'every row needs "question" (str), "choices" (list of 4 str), '
        '"answer" (0-based int index of the correct choice) and "subject" (str)',
    )
    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    for row, rec in enumerate(frame[list(QUESTION_COLUMNS)].itertuples(index=False)):
        question, choices, answer, subject = rec
        if not is_text(question):
            raise _row_error(
                source, row, f"empty or non-text question ({question!r})", "write the question text"
            )
        items = _as_list(choices)
        if items is None:
            raise _row_error(
                source,
                row,
                f"choices is {type(choices).__name__} {choices!r}, not a list",
                'give choices as a list of 4 strings (in CSV, a JSON list: ["a","b","c","d"])',
            )
        if len(items) != N_CHOICES:
            raise _row_error(
                source,
                row,
                f"{len(items)} choices, expected exactly {N_CHOICES}",
                f"give exactly {N_CHOICES} answer options",
            )
        for i, choice in enumerate(items):
            if not is_text(choice):
                raise _row_error(
                    source,
                    row,
                    f"choice {i} is empty or not text ({choice!r})",
                    "write a non-empty string for every choice",
                )
        # bool is an int subclass in Python; True/False as an answer is always a mistake.
        if isinstance(answer, bool) or not isinstance(answer, numbers.Integral):
            raise _row_error(
                source,
                row,
                f"answer {answer!r} is not an int",
                "use the 0-based index of the correct choice (0, 1, 2 or 3), not a letter or text",
            )
        if not 0 <= int(answer) < N_CHOICES:
            raise _row_error(
                source,
                row,
                f"answer {int(answer)} is out of range",
                f"use the 0-based index of the correct choice, 0..{N_CHOICES - 1}",
            )
        if not is_text(subject):
            raise _row_error(
                source,
                row,
                f"empty or non-text subject ({subject!r})",
                'set "subject" to a short name such as "virology" or "wmdp_bio"',
            )
        if unique:
            _refuse_repeated_choices(items, source, row)
            key = (question.strip(), tuple(str(c).strip() for c in items))
            if key in seen:
                raise _row_error(
                    source,
                    row,
                    f"duplicate of row {seen[key] + 1} (same question and choices)",
                    "delete one of the two rows",
                )
            seen[key] = row


def validate_corpus(frame: pd.DataFrame, source: str) -> None:
    """Refuse a corpus frame without non-empty `text` on every row (`source`/`title` optional)."""
    _require_columns(frame, source, ("text",), 'every row needs a non-empty "text" string')
    for column in ("source", "title"):
        if column not in frame.columns:
            continue
        for row, value in enumerate(frame[column]):
            if not _is_missing(value) and not isinstance(value, str):
                raise _row_error(
                    source,
                    row,
                    f"{column} is {type(value).__name__} {value!r}, not a string",
                    f'make "{column}" a string or leave it out',
                )
    for row, text in enumerate(frame["text"]):
        if not is_text(text):
            raise _row_error(
                source,
                row,
                f"empty or non-text document ({text!r:.60})",
                'put the document in "text" or delete the row',
            )


def normalise_questions(frame: pd.DataFrame) -> pd.DataFrame:
    """The prepared question schema: question str, choices list<string>, answer int64, subject."""
    return pd.DataFrame(
        {
            "question": [str(q) for q in frame["question"]],
            "choices": [[str(c) for c in _as_list(cs) or []] for cs in frame["choices"]],
            "answer": np.asarray([int(a) for a in frame["answer"]], dtype=np.int64),
            "subject": [str(s) for s in frame["subject"]],
        }
    )


def _str_or_none(value: Any) -> str | None:
    if _is_missing(value):
        return None
    return value if value.strip() else None


def normalise_corpus(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """The prepared corpus schema: `text` and a `source` naming where each document came from.

    An explicit `source` wins; else `origin:title`; else `origin:row` (1-based), so any document
    in a cached activation can be traced back to its input.
    """
    sources = frame["source"] if "source" in frame.columns else [None] * len(frame)
    titles = frame["title"] if "title" in frame.columns else [None] * len(frame)
    out = []
    for row, (src, title) in enumerate(zip(sources, titles, strict=True)):
        src, title = _str_or_none(src), _str_or_none(title)
        out.append(src or f"{origin}:{title if title else row + 1}")
    return pd.DataFrame({"text": [str(t) for t in frame["text"]], "source": out})
