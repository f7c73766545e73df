"""Local data files (jsonl, json, csv, txt, parquet) as object-dtype frames of records."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from sae_unlearn.data.schema import DataError
from sae_unlearn.errors import read_input

QUESTION_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
CORPUS_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
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
    readers = {
        ".jsonl": _read_jsonl,
        ".json": _read_json,
        ".parquet": lambda p: pq.read_table(p).to_pylist(),
        ".csv": _read_csv,
        ".txt": _read_txt,
    }
    # A binary file, a corrupt parquet file or a CSV that does not parse: the file named and
    # the format's own words, not the reader's traceback.
    fix = f"save it as UTF-8 {suffix} (see README: Question roles)"
    records = read_input(path, readers[suffix], f"{suffix} data file", fix)
    return records_frame(records)
