"""Where the embedded corpora and question sets live: package data, found by importlib.

They ship inside the package (`sae_unlearn/data/embedded/`), so `embedded` works from any
working directory and from a non-editable install, not only from a repository checkout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from sae_unlearn.data.schema import ALL_ROLES, DataError

EMBEDDED_KINDS = ("corpus", "questions")


def embedded_root() -> Traversable:
    """The package-data directory holding `{role}_{kind}.jsonl`."""
    return resources.files("sae_unlearn.data") / "embedded"


def embedded_name(kind: str, role: str) -> str:
    if role not in ALL_ROLES:
        raise DataError(f"role {role!r} is not one of {ALL_ROLES}")
    return f"{role}_{kind}.jsonl"


@contextmanager
def embedded_file(kind: str, role: str, embedded_dir: str | Path | None = None) -> Iterator[Path]:
    """The embedded `kind` file of `role` as a file path (from `embedded_dir` when given)."""
    name = embedded_name(kind, role)
    resource = Path(embedded_dir) / name if embedded_dir else embedded_root() / name
    if not resource.is_file():
        raise DataError(
            f"{resource}: embedded {kind} file is missing. "
            "Fix: run `python scripts/build_embedded_data.py` from the repo root."
        )
    # A plain directory on disk yields the file itself; a zipped install, a temporary copy.
    with resources.as_file(resource) as path:
        yield path
