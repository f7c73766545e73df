"""Where prepare-data writes each role's corpus and question set, the one owner of that layout.

Corpora and question sets have a folder each under the prepared-data folder, so that a stage
can depend on exactly the files there are (a DVC dependency must exist, and the optional
retain_near role's may not) and a question edit never reruns the activation cache. A module
of its own, outside the data package, so that the cache stage needs only this file.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("corpus", "questions")
QUESTIONS_DIR = "questions"
CORPORA_DIR = "corpora"


def prepared_path(out_dir: str | Path, role: str, kind: str) -> Path:
    """Where prepare-data writes `role`'s corpus or question set."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; use one of {KINDS}")
    folder = QUESTIONS_DIR if kind == "questions" else CORPORA_DIR
    return Path(out_dir) / folder / f"{role}_{kind}.parquet"
