"""Forget/retain corpora and multiple-choice question sets: loading, validation, normalisation.

Questions follow the `cais/wmdp` schema (`question`, `choices` x4, `answer` 0..3) plus `subject`;
corpora are documents with a `text` column. Every loader returns a plain pandas frame in that
schema, and every input is validated before anything is written, so a malformed row fails here,
with its file and row named, instead of as a silent accuracy change in a later stage.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sae_unlearn.io import write_parquet, write_text

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "data" / "embedded"
ROLES = ("forget", "retain")
N_CHOICES = 4
QUESTION_COLUMNS = ("question", "choices", "answer", "subject")
CORPUS_COLUMNS = ("text", "source")

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

QUESTION_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
CORPUS_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")


class DataError(ValueError):
    """A data input that cannot be used; the message names the file, the row and the fix."""


# --------------------------------------------------------------------------- validation


def _row_error(source: str, row: int, problem: str, fix: str) -> DataError:
    # Rows are 1-based data records (the header of a CSV is not counted), as editors show them.
    return DataError(f"{source}: row {row + 1}: {problem}. Fix: {fix}.")


def _is_text(value: Any) -> bool:
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


def validate_questions(frame: pd.DataFrame, source: str, *, unique: bool = True) -> None:
    """Refuse a question frame that is not in the `cais/wmdp` schema plus `subject`.

    `unique=False` is for hub benchmarks, whose row set must stay exactly as lm-eval scores it.
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
        if not _is_text(question):
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
            if not _is_text(choice):
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
        if not _is_text(subject):
            raise _row_error(
                source,
                row,
                f"empty or non-text subject ({subject!r})",
                'set "subject" to a short name such as "virology" or "wmdp_bio"',
            )
        if unique:
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
        if not _is_text(text):
            raise _row_error(
                source,
                row,
                f"empty or non-text document ({text!r:.60})",
                'put the document in "text" or delete the row',
            )


# --------------------------------------------------------------------------- normalisation


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


# --------------------------------------------------------------------------- file readers


def _records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    # object dtype keeps each value as parsed: an int answer next to a null stays an int
    # instead of the whole column becoming float, so errors point at the real bad row.
    return pd.DataFrame(records, dtype=object)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}: line {line_no}: not valid JSON ({exc.msg}). "
                    "Fix: write one JSON object per line."
                ) from exc
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}: line {line_no}: a JSON {type(record).__name__}, not an object. "
                    "Fix: write one JSON object per line."
                )
            records.append(record)
    return records


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). "
            "Fix: write a JSON array of objects (or use .jsonl, one object per line)."
        ) from exc
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(
            f"{path}: top level is not a list of objects. "
            "Fix: write a JSON array of objects (or use .jsonl, one object per line)."
        )
    return data


def _read_csv(path: Path) -> list[dict[str, Any]]:
    # Everything is read as text so that types are decided here, not guessed per column.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    records = frame.to_dict("records")
    for rec in records:
        if "choices" in rec:
            try:
                rec["choices"] = json.loads(rec["choices"])
            except json.JSONDecodeError:
                pass  # left as a string; validation reports it with the fix
        if "answer" in rec and re.fullmatch(r"\s*-?\d+\s*", rec["answer"] or ""):
            rec["answer"] = int(rec["answer"])
    return records


def _read_txt(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    blocks = [b.strip() for b in re.split(r"\n[ \t]*\n", text)]
    return [{"text": b} for b in blocks if b]


def read_records(path: str | Path, suffixes: Sequence[str]) -> pd.DataFrame:
    """A local file as an object-dtype frame, one row per record."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}. Fix: use one of {', '.join(suffixes)}."
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file. Fix: check the path (relative to the repo root).")
    if suffix == ".jsonl":
        records = _read_jsonl(path)
    elif suffix == ".json":
        records = _read_json(path)
    elif suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
    elif suffix == ".csv":
        records = _read_csv(path)
    else:
        records = _read_txt(path)
    return _records_frame(records)


# --------------------------------------------------------------------------- loaders


def _load_hub(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    # Imported late: `datasets` is slow to import and only hub specs need it.
    import datasets

    return datasets.load_dataset(*args, **kwargs).to_list()


def _embedded_path(kind: str, role: str, embedded_dir: str | Path | None) -> Path:
    if role not in ROLES:
        raise DataError(f"role {role!r} is not one of {ROLES}")
    path = Path(embedded_dir or EMBEDDED_DIR) / f"{role}_{kind}.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path}: embedded {kind} file is missing. "
            "Fix: run `python scripts/build_embedded_data.py` from the repo root."
        )
    return path


def load_questions(
    spec: str,
    role: str = "forget",
    *,
    mmlu_subjects: Iterable[str] = PAPER_MMLU_SUBJECTS,
    embedded_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Questions from `embedded`, `wmdp-bio`, `mmlu` or a local file; validated, normalised."""
    if spec == "embedded":
        path = _embedded_path("questions", role, embedded_dir)
        frame = read_records(path, QUESTION_SUFFIXES)
        validate_questions(frame, str(path))
    elif spec == WMDP_BIO_CONFIG:
        records = _load_hub(WMDP_REPO, WMDP_BIO_CONFIG, split="test")
        for rec in records:
            rec["subject"] = WMDP_BIO_SUBJECT
        frame = _records_frame(records)
        validate_questions(frame, f"{WMDP_REPO} ({WMDP_BIO_CONFIG}, test)", unique=False)
    elif spec == "mmlu":
        subjects = list(mmlu_subjects)
        if not subjects:
            raise DataError("mmlu: no subjects given. Fix: list them in data.mmlu_subjects.")
        frames = []
        for subject in subjects:
            records = _load_hub(MMLU_REPO, subject, split="test")
            for rec in records:
                # Per-subject configs carry `subject`; fill it only if a mirror dropped it.
                if not _is_text(rec.get("subject")):
                    rec["subject"] = subject
            frame = _records_frame(records)
            validate_questions(frame, f"{MMLU_REPO} ({subject}, test)", unique=False)
            frames.append(frame)
        frame = pd.concat(frames, ignore_index=True)
    else:
        path = Path(spec)
        frame = read_records(path, QUESTION_SUFFIXES)
        validate_questions(frame, str(path))
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
        path = _embedded_path("corpus", role, embedded_dir)
        frame = read_records(path, CORPUS_SUFFIXES)
        source, origin = str(path), f"embedded/{role}"
    elif spec == "wikitext":
        rows = _load_hub(WIKITEXT_REPO, wikitext_config, split="train")
        frame = _records_frame(split_wikitext(r["text"] for r in rows))
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


# --------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class DataConfig:
    forget_corpus: str = "embedded"
    retain_corpus: str = "embedded"
    forget_questions: str = "embedded"
    retain_questions: str = "embedded"
    mmlu_subjects: tuple[str, ...] = PAPER_MMLU_SUBJECTS
    wikitext_config: str = "wikitext-2-raw-v1"
    max_documents: int | None = None
    embedded_dir: str | None = None


@dataclass
class DataSummary:
    documents: dict[str, int] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    questions: dict[str, dict[str, int]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"{role} corpus: {self.documents[role]} documents, {self.words[role]} words"
            for role in self.documents
        ]
        for role, by_subject in self.questions.items():
            total = sum(by_subject.values())
            parts = ", ".join(f"{s} {n}" for s, n in by_subject.items())
            out.append(f"{role} questions: {total} ({parts})")
        return out


def prepared_paths(out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        f"{role}_{kind}": out / f"{role}_{kind}.parquet"
        for role in ROLES
        for kind in ("corpus", "questions")
    }


def prepare_data(cfg: DataConfig, out_dir: str | Path) -> DataSummary:
    """Load, validate and write the four prepared parquet files; return their counts.

    Everything is loaded and validated before the first write, so a bad input leaves the
    previous outputs untouched rather than a mix of old and new files.
    """
    corpora = {
        role: load_corpus(
            getattr(cfg, f"{role}_corpus"),
            role,
            wikitext_config=cfg.wikitext_config,
            embedded_dir=cfg.embedded_dir,
            max_documents=cfg.max_documents,
        )
        for role in ROLES
    }
    questions = {
        role: load_questions(
            getattr(cfg, f"{role}_questions"),
            role,
            mmlu_subjects=cfg.mmlu_subjects,
            embedded_dir=cfg.embedded_dir,
        )
        for role in ROLES
    }
    paths = prepared_paths(out_dir)
    summary = DataSummary()
    for role in ROLES:
        write_parquet(paths[f"{role}_corpus"], corpora[role])
        write_parquet(paths[f"{role}_questions"], questions[role])
        texts = corpora[role]["text"]
        summary.documents[role] = len(texts)
        summary.words[role] = int(sum(len(t.split()) for t in texts))
        summary.questions[role] = dict(sorted(Counter(questions[role]["subject"]).items()))
    return summary


# --------------------------------------------------------------------------- embedded build


def _title_from_stem(stem: str) -> str:
    # Source files are named like `a_07_influenza.txt`: the prefix only orders them.
    words = re.sub(r"^[a-z]_\d+_", "", stem).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _clean_document(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def build_embedded(src_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Consolidate the hand-written sources into the committed embedded files.

    `corpus_src/{role}/*.txt` (one document per file) become `{role}_corpus.jsonl` rows
    {"title", "text"} in file-name order; `questions_src/{role}_questions.jsonl` become
    `{role}_questions.jsonl` sorted by subject then question. Sources are validated first,
    so an error names the source file and row. Missing sources are skipped and not counted.
    """
    src, out = Path(src_dir), Path(out_dir)
    counts: dict[str, int] = {}
    for role in ROLES:
        files = sorted((src / "corpus_src" / role).glob("*.txt"))
        if files:
            docs = [
                {"title": _title_from_stem(f.stem), "text": _clean_document(f.read_text("utf-8"))}
                for f in files
            ]
            for f, doc in zip(files, docs, strict=True):
                if not doc["text"]:
                    raise DataError(f"{f}: empty document. Fix: write its text or delete the file.")
            validate_corpus(_records_frame(docs), str(src / "corpus_src" / role))
            write_text(out / f"{role}_corpus.jsonl", _jsonl(docs))
            counts[f"{role}_corpus"] = len(docs)

        qpath = src / "questions_src" / f"{role}_questions.jsonl"
        if qpath.is_file():
            frame = read_records(qpath, QUESTION_SUFFIXES)
            validate_questions(frame, str(qpath))
            rows = normalise_questions(frame).to_dict("records")
            rows.sort(key=lambda r: (r["subject"], r["question"], r["choices"]))
            records = [
                {
                    "question": r["question"],
                    "choices": list(r["choices"]),
                    "answer": int(r["answer"]),
                    "subject": r["subject"],
                }
                for r in rows
            ]
            write_text(out / f"{role}_questions.jsonl", _jsonl(records))
            counts[f"{role}_questions"] = len(records)
    return counts
