"""constraints.txt: every dependency pinned to a version its requirement allows, and the
environment the tests run in installed from it (what `make test` and CI do)."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts.write_constraints import HEADER, UNPINNED, pins

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev", "lm-eval", "ray", "remote")  # what `make test` installs


def constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in entries}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


def test_every_requirement_is_pinned_within_its_range():
    pinned = constraints()
    for req in requirements():
        name = canonicalize_name(req.name)
        if name in UNPINNED:  # the machine's build (TORCH_SPEC)
            assert name not in pinned
            continue
        assert name in pinned, f"{req} has no pin: run `make constraints`"
        assert Version(pinned[name]) in req.specifier, f"{name}=={pinned[name]} breaks {req}"


def test_the_environment_is_installed_from_the_constraints():
    """Fails where the test environment was installed without `-c constraints.txt` (an extra
    left out, e.g. Ray, is skipped by its own tests, and here too)."""
    pinned = constraints()
    checked = 0
    for req in requirements():
        name = canonicalize_name(req.name)
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue
        if name in pinned:
            assert installed == pinned[name], f"{name} {installed}, pinned {pinned[name]}"
            checked += 1
    assert checked >= len(requirements()) // 2  # the runtime dependencies at least


def test_pins_leave_out_torch_and_the_project_and_sort_by_name():
    report = {
        "install": [
            {"metadata": {"name": "Zeta_Pkg", "version": "1.0"}},
            {"metadata": {"name": "torch", "version": "2.13.0+cpu"}},
            {"metadata": {"name": "sae-unlearn", "version": "0.1.0"}},
            {"metadata": {"name": "alpha.pkg", "version": "2026.7.0"}},
        ]
    }
    assert pins(report) == ["alpha-pkg==2026.7.0", "zeta-pkg==1.0"]
    assert (ROOT / "constraints.txt").read_text(encoding="utf-8").startswith(HEADER)
