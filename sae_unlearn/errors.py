"""The one error type for bad input, and the readers that turn a format's own errors into it.

A `UserError` is a fault of what the user gave (a file, a row, a key, an option), never of the
code: its message names what was given, where, and the fix, and the command line prints it
without a traceback (exit 2). Any other exception is a program error and keeps its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import yaml

T = TypeVar("T")


class UserError(ValueError):
    """Bad input; the message says what was given, where, and how to fix it.

    A ValueError, so callers that guard a library call with `except ValueError` still work."""


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder that does not exist (also a FileNotFoundError)."""


def user_error(where: str | Path, problem: str, fix: str) -> UserError:
    return UserError(f"{where}: {problem}. Fix: {fix}.")


# What each reader's failure says about the file, by exception type: the format's own
# errors (a decode error of a binary file, a JSON/YAML parser error, Arrow's "magic bytes not
# found" of a corrupt parquet file or a CSV that does not parse).
_FORMAT_ERRORS: tuple[type[BaseException], ...] = (
    UnicodeDecodeError,
    json.JSONDecodeError,
    yaml.YAMLError,
    pa.ArrowException,
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
)


def read_input(path: str | Path, reader: Callable[[Path], T], what: str, fix: str) -> T:
    """`reader(path)`, with a missing file and every parse or decode error of its format
    turned into a UserError naming the file, the format's own words and the fix."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such {what}. Fix: {fix}.")
    try:
        return reader(path)
    except UserError:
        raise
    except UnicodeDecodeError as exc:
        raise user_error(
            path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", fix
        ) from None
    except IsADirectoryError:
        raise user_error(path, f"is a folder, not a {what} file", fix) from None
    except _FORMAT_ERRORS as exc:
        raise user_error(path, f"cannot be read as a {what} ({_first_line(exc)})", fix) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_json_input(path: str | Path, what: str, fix: str) -> Any:
    return read_input(path, lambda p: json.loads(p.read_text(encoding="utf-8")), what, fix)


def read_yaml_input(path: str | Path, what: str, fix: str) -> Any:
    return read_input(path, lambda p: yaml.safe_load(p.read_text(encoding="utf-8")), what, fix)
