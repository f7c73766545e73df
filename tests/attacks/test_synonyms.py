"""The evasion attack's synonym table: the embedded one, or a user's JSON file."""

from __future__ import annotations

import json
import re

import pytest

from sae_unlearn.attacks.synonyms import EMBEDDED_SYNONYMS, read_synonyms
from sae_unlearn.errors import UserError


def test_embedded_table_loads():
    table = read_synonyms(EMBEDDED_SYNONYMS)
    assert EMBEDDED_SYNONYMS == "embedded"
    assert "_about" not in table
    assert not any(word.startswith("_") for word in table)
    assert all(isinstance(v, str) and v.strip() for v in table.values())
    assert all(word.isalpha() for word in table)
    # Matching is case-insensitive, so no two keys may differ in case only.
    assert len({word.casefold() for word in table}) == len(table)
    # A few entries as the table writes them.
    assert table["virus"] == "microscopic invader"
    assert table["viruses"] == "microscopic invaders"
    assert table["HIV"] == "the immunodeficiency agent"


def write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def test_a_user_file_loads_without_comment_keys(tmp_path):
    path = write(tmp_path / "syn.json", {"_note": "a comment", "germ": "bug", "Koch": "him"})
    assert read_synonyms(path) == {"germ": "bug", "Koch": "him"}
    # A Path works as well as a string; an empty object is an empty table.
    assert read_synonyms(tmp_path / "syn.json") == {"germ": "bug", "Koch": "him"}
    assert read_synonyms(write(tmp_path / "empty.json", {})) == {}


def test_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*does not exist.*embedded"):
        read_synonyms(path)
    # A folder is no file either.
    with pytest.raises(UserError, match="does not exist"):
        read_synonyms(tmp_path)


def test_invalid_json_is_refused(tmp_path):
    path = write(tmp_path / "bad.json", '{"virus": "bug",')
    with pytest.raises(UserError, match=re.escape(path) + " is not valid JSON.*Fix"):
        read_synonyms(path)


@pytest.mark.parametrize(("data", "kind"), [(["virus", "bug"], "list"), ("virus", "str")])
def test_a_non_object_is_refused(tmp_path, data, kind):
    path = write(tmp_path / "list.json", json.dumps(data))
    with pytest.raises(UserError, match=re.escape(path) + f" holds a {kind}, not a JSON object"):
        read_synonyms(path)


@pytest.mark.parametrize("value", [3, None, ["bug"], "", "   "])
def test_a_value_that_is_no_text_is_refused(tmp_path, value):
    path = write(tmp_path / "syn.json", {"germ": "bug", "virus": value})
    with pytest.raises(UserError, match=re.escape(path) + ": key 'virus' maps to.*give a text"):
        read_synonyms(path)


@pytest.mark.parametrize("key", ["two words", "covid-19", "H5N1", ""])
def test_a_key_that_is_not_one_word_is_refused(tmp_path, key):
    path = write(tmp_path / "syn.json", {key: "something"})
    expected = re.escape(f"{path}: key {key!r} is not one word of letters") + ".*one key per word"
    with pytest.raises(UserError, match=expected):
        read_synonyms(path)
