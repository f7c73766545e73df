"""Atomic output helpers: an interrupted stage must never leave a half-written file."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def _replace(tmp: Path, target: Path) -> None:
    """Put `tmp` at `target` so a reader sees the old or the new one, never neither.

    A file (or a new name) is one os.replace. A folder cannot be replaced onto a non-empty
    folder: the two are exchanged atomically where the kernel can, otherwise the old one is
    first renamed aside (a crash between the two renames leaves it beside the target, whole).
    """
    if not target.is_dir() or target.is_symlink():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp)  # now the old folder
        return
    old = target.with_name(f".{target.name}.old.{os.getpid()}.tmp")
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; put it at `path` only if the block succeeds.

    Works for files and directories alike. The temporary name lives in the same
    directory so the final rename is atomic on POSIX file systems, and the old `path` is
    never deleted before the new one is in place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp reserves the name; callers decide whether they write a file or a directory.
    tmp.rmdir()
    try:
        yield tmp
        _replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A new, empty folder to write a stage's whole output into; it replaces `path` in one
    step when the block succeeds (nothing of a failed or killed run is left inside `path`)."""
    with atomic_path(path) as tmp:
        tmp.mkdir()
        yield tmp


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
