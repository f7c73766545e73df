"""Sample questions and documents, and writers for every input format, shared by the data tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

QUESTIONS = [
    {
        "question": "What coats a virus?",
        "choices": ["capsid", "nucleus", "cell wall", "ribosome"],
        "answer": 0,
        "subject": "virology",
    },
    {
        "question": "Which cells make antibodies?",
        "choices": ["red cells", "B cells", "platelets", "neurons"],
        "answer": 1,
        "subject": "immunology",
    },
    {
        "question": "Which virus causes AIDS?",
        "choices": ["HIV", "smallpox", "polio", 'rabies, "quoted"'],
        "answer": 3,
        "subject": "virology",
    },
]
DOCS = [
    {"title": "Viruses", "text": "Viruses replicate inside cells.\nThey have a capsid."},
    {"title": "Antibodies", "text": "B cells make antibodies, which bind antigens."},
    {"title": "Fever", "text": "Fever is a raised body temperature."},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_any(path: Path, rows: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".jsonl":
        return write_jsonl(path, rows)
    if suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    elif suffix == ".csv":
        frame = pd.DataFrame(rows)
        if "choices" in frame:
            frame["choices"] = [json.dumps(c) for c in frame["choices"]]
        frame.to_csv(path, index=False)
    elif suffix == ".txt":
        path.write_text("\n\n".join(r["text"] for r in rows) + "\n", encoding="utf-8")
    return path


def flat(text: str) -> str:
    # Rich wraps typer errors in a box; compare the words only.
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def with_bad_row(**changes) -> list[dict]:
    rows = [dict(r) for r in QUESTIONS]
    rows[1].update(changes)  # the bad row is always data row 2
    return rows
