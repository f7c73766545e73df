"""dvc.yaml declares everything each stage runs and reads, so `dvc status` never goes stale.

The code a stage runs is found by following imports from its command module (not by a list
kept beside dvc.yaml), so a new import that dvc.yaml misses fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.cli import app
from pipeline.params import LOCAL_INPUTS

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
LOCAL_PACKAGES = ("sae_unlearn", "pipeline")
# Modules that cannot change a stage's outputs: where its run time is logged.
NO_OUTPUT_EFFECT = {"pipeline/timing.py"}
STAGE_OF_SECTION = {
    "data": ["prepare-data"],
    "model": ["prepare-model"],
    "sae": ["train-sae"],
    "clamp": ["clamp-config"],
    "attack.evasion": ["attack-evasion-baseline", "attack-evasion"],
}


def stages_reading(key: str) -> list[str]:
    """The stages that read a params key's file: the longest section prefix listed."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in STAGE_OF_SECTION:
            return STAGE_OF_SECTION[".".join(parts[:n])]
    raise AssertionError(f"no stage listed for {key}")


def module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    if path.is_dir() and (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def imported_modules(path: Path) -> set[str]:
    """Local modules a file imports (a `from package import name` counts the name when it is
    a submodule, else the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {
        name
        for name in found
        if name.split(".")[0] in LOCAL_PACKAGES and module_file(name) is not None
    }


def import_closure(module: str) -> set[Path]:
    """Every local source file `module` runs, its packages' `__init__.py` included."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(imported_modules(module_file(name)))
    return {module_file(name).relative_to(ROOT) for name in seen}


def stage_command_module(stage: dict) -> str:
    words = stage["cmd"].split()
    assert words[0] == "sae-unlearn", stage["cmd"]
    for command in app.registered_commands:
        if command.name == words[1]:
            return command.callback.__module__
    raise AssertionError(f"no sae-unlearn command {words[1]!r}")


def runs_code(path: Path) -> bool:
    """Whether a file does anything on import beyond a docstring, imports and the package's
    `__all__` / `__version__` (most `__init__.py` files only re-export)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets
        ):
            continue
        return True
    return False


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_all_the_code_it_runs(name):
    stage = STAGES[name]
    deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])]
    code = import_closure(stage_command_module(stage))
    missing = sorted(
        str(path)
        for path in code
        if str(path) not in NO_OUTPUT_EFFECT and runs_code(ROOT / path) and not covered(path, deps)
    )
    assert not missing, f"stage {name} runs {missing} but dvc.yaml does not list them"


def test_a_package_init_that_runs_code_counts_as_code():
    assert runs_code(ROOT / "pipeline/__init__.py")  # it pins the CPU kernels
    assert not runs_code(ROOT / "sae_unlearn/__init__.py")


def test_closure_follows_imports_through_packages():
    code = import_closure("pipeline.select")
    assert Path("pipeline/params.py") in code
    assert any(Path("sae_unlearn/selection") in path.parents for path in code)


@pytest.mark.parametrize("key", sorted(LOCAL_INPUTS))
def test_stage_depends_on_the_folder_its_file_params_point_to(key):
    _, folder = LOCAL_INPUTS[key]
    for name in stages_reading(key):
        deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in STAGES[name]["deps"]]
        assert folder in deps, name
    assert (ROOT / folder).is_dir()
