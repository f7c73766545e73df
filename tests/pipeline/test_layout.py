"""The house rules a reviewer checks by hand, checked on every run: thin stage commands,
small library modules, and a library that imports neither DVC nor the stage commands."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_MODULES = sorted((ROOT / "sae_unlearn").rglob("*.py"))
MAX_COMMAND_LINES = 60
MAX_MODULE_LINES = 400


@pytest.mark.parametrize("command", app.registered_commands, ids=lambda c: c.name)
def test_stage_commands_only_parse_load_call_and_write(command):
    lines, _ = inspect.getsourcelines(command.callback)
    assert len(lines) <= MAX_COMMAND_LINES, (
        f"`sae-unlearn {command.name}` is {len(lines)} lines; move its logic into sae_unlearn/"
    )


@pytest.mark.parametrize("path", LIBRARY_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_modules_stay_small(path):
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {n_lines} lines"


@pytest.mark.parametrize("path", LIBRARY_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_neither_dvc_nor_the_pipeline(path):
    text = path.read_text(encoding="utf-8")
    assert "import dvc" not in text and "from dvc" not in text
    assert "from pipeline" not in text and "import pipeline" not in text
