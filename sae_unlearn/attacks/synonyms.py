"""The evasion attack's synonym table: whole words -> what a user might type instead."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from sae_unlearn.errors import UserError

EMBEDDED_SYNONYMS = "embedded"


def read_synonyms(source: str | Path) -> dict[str, str]:
    """`embedded` (the table built for the embedded default) or a JSON object file of
    word -> replacement; keys starting with `_` are comments."""
    if str(source) == EMBEDDED_SYNONYMS:
        resource = resources.files("sae_unlearn.data") / "embedded" / "evasion_synonyms.json"
        text, where = resource.read_text(encoding="utf-8"), "the embedded synonym table"
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(
                f"attack.evasion.synonyms: {path} does not exist. Fix: give a JSON file of "
                "word -> replacement, or `embedded`"
            )
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        table = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where} is not valid JSON ({exc}). Fix: write one JSON object") from exc
    if not isinstance(table, dict):
        raise UserError(f"{where} holds a {type(table).__name__}, not a JSON object of words")
    out = {}
    for word, replacement in table.items():
        if word.startswith("_"):
            continue
        if not isinstance(replacement, str) or not replacement.strip():
            raise UserError(f"{where}: key {word!r} maps to {replacement!r}. Fix: give a text")
        if not word.isalpha():
            raise UserError(
                f"{where}: key {word!r} is not one word of letters. Fix: one key per word"
            )
        out[word] = replacement
    return out
