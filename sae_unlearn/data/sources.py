"""Question sets and corpora from their sources: embedded, hub (wmdp-bio, mmlu, mmlu-bio,
wikitext), files.

Every loader returns a plain pandas frame in the prepared schema, validated and normalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from sae_unlearn.data.embedded import embedded_file
from sae_unlearn.data.hub import check_mmlu_subjects, load_hub
from sae_unlearn.data.readers import (
    CORPUS_SUFFIXES,
    QUESTION_SUFFIXES,
    read_records,
    records_frame,
)
from sae_unlearn.data.schema import (
    DataError,
    is_text,
    normalise_corpus,
    normalise_questions,
    validate_corpus,
    validate_questions,
)

# Hub ids. `Salesforce/wikitext` is the canonical id; the bare `wikitext` is only a legacy alias.
WMDP_REPO = "cais/wmdp"
WMDP_BIO_CONFIG = "wmdp-bio"
WMDP_BIO_SUBJECT = "wmdp_bio"
MMLU_REPO = "cais/mmlu"
WIKITEXT_REPO = "Salesforce/wikitext"
PAPER_MMLU_SUBJECTS = (
    "high_school_us_history",
    "high_school_geography",
    "human_aging",
    "college_computer_science",
)
# `mmlu-bio`: the paper's benign biology next to WMDP-bio (the retain_near role).
MMLU_BIO = "mmlu-bio"
MMLU_BIO_SUBJECTS = ("college_biology", "high_school_biology")
# The spec of an optional role that is left out.
NONE = "none"


def load_questions(
    spec: str,
    role: str = "forget",
    *,
    mmlu_subjects: Iterable[str] = PAPER_MMLU_SUBJECTS,
    embedded_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Questions from `embedded`, `wmdp-bio`, `mmlu`, `mmlu-bio` or a local file; validated,
    normalised."""
    if spec == "embedded":
        with embedded_file("questions", role, embedded_dir) as path:
            frame = read_records(path, QUESTION_SUFFIXES)
        validate_questions(frame, str(path))
    elif spec == WMDP_BIO_CONFIG:
        records = load_hub(WMDP_REPO, WMDP_BIO_CONFIG, split="test")
        for rec in records:
            rec["subject"] = WMDP_BIO_SUBJECT
        frame = records_frame(records)
        validate_questions(frame, f"{WMDP_REPO} ({WMDP_BIO_CONFIG}, test)", unique=False)
    elif spec == "mmlu":
        frame = _load_mmlu(list(mmlu_subjects))
    elif spec == MMLU_BIO:
        frame = _load_mmlu(list(MMLU_BIO_SUBJECTS))
    else:
        return read_question_file(Path(spec))
    return normalise_questions(frame)


def _load_mmlu(subjects: list[str]) -> pd.DataFrame:
    """`cais/mmlu` test rows of each subject, the subject kept on every row."""
    if not subjects:
        raise DataError("mmlu: no subjects given. Fix: list them in data.mmlu_subjects.")
    check_mmlu_subjects(subjects)
    frames = []
    for subject in subjects:
        records = load_hub(MMLU_REPO, subject, split="test")
        for rec in records:
            # Per-subject configs carry `subject`; fill it only if a mirror dropped it.
            if not is_text(rec.get("subject")):
                rec["subject"] = subject
        frame = records_frame(records)
        validate_questions(frame, f"{MMLU_REPO} ({subject}, test)", unique=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_question_file(path: Path, unique: bool = True) -> pd.DataFrame:
    """Any question file in the cais/wmdp schema (+ subject), validated (raises DataError).
    `unique=False` for sets that came from the hub: WMDP and MMLU legitimately repeat some
    stems, and lm-eval keeps them."""
    frame = read_records(path, QUESTION_SUFFIXES)
    validate_questions(frame, str(path), unique=unique)
    return normalise_questions(frame)


_WIKITEXT_HEADING = re.compile(r"^ = (?!=)(.*?) = $")


def split_wikitext(lines: Iterable[str]) -> list[dict[str, str]]:
    """Wikitext's one-line-per-row text as one document per article.

    Articles start at a top-level ` = Title = ` line; ` = = Section = = ` lines stay inside the
    article. Empty lines are dropped and the rest joined with newlines. Text before the first
    heading, if any, becomes an untitled document.
    """
    docs: list[dict[str, str]] = []
    title = ""
    body: list[str] = []

    def flush() -> None:
        if body:
            docs.append({"title": title, "text": "\n".join(body)})

    for raw in lines:
        line = raw.rstrip("\n")
        match = _WIKITEXT_HEADING.match(line)
        if match:
            flush()
            title, body = match.group(1).strip(), []
        elif line.strip():
            body.append(line.strip())
    flush()
    return docs


def load_corpus(
    spec: str,
    role: str = "forget",
    *,
    wikitext_config: str = "wikitext-2-raw-v1",
    embedded_dir: str | Path | None = None,
    max_documents: int | None = None,
) -> pd.DataFrame:
    """Documents from `embedded`, `wikitext` or a local file; validated, normalised.

    `max_documents` keeps the first N documents in input order (no shuffling, so the
    prepared corpus, and every activation cached from it, is reproducible).
    """
    if spec == "embedded":
        with embedded_file("corpus", role, embedded_dir) as path:
            frame = read_records(path, CORPUS_SUFFIXES)
        # The origin names the role, not the file's location, so prepared outputs do not
        # depend on where the package is installed.
        source, origin = str(path), f"embedded/{role}"
    elif spec == "wikitext":
        rows = load_hub(WIKITEXT_REPO, wikitext_config, split="train")
        frame = records_frame(split_wikitext(r["text"] for r in rows))
        source = origin = f"wikitext/{wikitext_config}"
    else:
        path = Path(spec)
        frame = read_records(path, CORPUS_SUFFIXES)
        source, origin = str(path), path.name
    validate_corpus(frame, source)
    if max_documents is not None:
        if max_documents < 1:
            raise DataError(f"max_documents is {max_documents}. Fix: use a positive int or null.")
        frame = frame.iloc[:max_documents].reset_index(drop=True)
    return normalise_corpus(frame, origin)
