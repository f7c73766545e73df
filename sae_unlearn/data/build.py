"""Repository tooling: consolidate the hand-written sources into the embedded jsonl files.

Called by `scripts/build_embedded_data.py` with `data/embedded_src/` as the sources and the
package's `sae_unlearn/data/embedded/` as the output; the output is sorted and deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sae_unlearn.data.readers import QUESTION_SUFFIXES, read_records, records_frame
from sae_unlearn.data.schema import (
    ALL_ROLES,
    DataError,
    normalise_questions,
    validate_corpus,
    validate_questions,
)
from sae_unlearn.io import write_text


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

    `corpus/{role}/*.txt` (one document per file) become `{role}_corpus.jsonl` rows
    {"title", "text"} in file-name order; `questions/{role}_questions.jsonl` become
    `{role}_questions.jsonl` sorted by subject then question. Sources are validated first,
    so an error names the source file and row. Missing sources are skipped and not counted.
    """
    src, out = Path(src_dir), Path(out_dir)
    counts: dict[str, int] = {}
    for role in ALL_ROLES:
        files = sorted((src / "corpus" / role).glob("*.txt"))
        if files:
            docs = [
                {"title": _title_from_stem(f.stem), "text": _clean_document(f.read_text("utf-8"))}
                for f in files
            ]
            for f, doc in zip(files, docs, strict=True):
                if not doc["text"]:
                    raise DataError(f"{f}: empty document. Fix: write its text or delete the file.")
            validate_corpus(records_frame(docs), str(src / "corpus" / role))
            write_text(out / f"{role}_corpus.jsonl", _jsonl(docs))
            counts[f"{role}_corpus"] = len(docs)

        qpath = src / "questions" / f"{role}_questions.jsonl"
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
