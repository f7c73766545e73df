"""Write constraints.txt: the exact versions a clean resolve of the project picks today.

`make run`, `make test` and CI install with `pip install -c constraints.txt`, so a clean
machine gets the versions the tests passed on instead of whatever pip's resolver picks on the
day: a fresh resolve once backtracked to s3fs 0.4.2 (2020) because the newest botocore was
outside aiobotocore's range, and CI failed on it. The same versions also keep the pipeline's
bytes the same from machine to machine. torch is left out: its build (CPU or CUDA) is the
machine's choice (`TORCH_SPEC`).

    make constraints    # resolves with pip --dry-run --report, then runs this script

Usage: python scripts/write_constraints.py REPORT.json [constraints.txt]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "sae-unlearn"
UNPINNED = {"torch"}  # the machine's build, TORCH_SPEC
HEADER = """\
# Exact versions for `pip install -c constraints.txt` (Makefile, CI), from a clean resolve of
# `.[dev,lm-eval,ray,remote]`. Regenerate with `make constraints`; torch is the machine's
# choice (TORCH_SPEC). `pip install -e .` without this file takes the newest versions.
"""


def pins(report: dict) -> list[str]:
    """`name==version` for every package the resolve installs, the project and torch left
    out, sorted by name."""
    out = {}
    for item in report["install"]:
        meta = item["metadata"]
        name = canonicalize_name(meta["name"])
        if name != PROJECT and name not in UNPINNED:
            out[name] = meta["version"]
    return [f"{name}=={version}" for name, version in sorted(out.items())]


def main(argv: list[str]) -> None:
    if not argv or len(argv) > 2:
        sys.exit(__doc__)
    report = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    target = Path(argv[1]) if len(argv) > 1 else ROOT / "constraints.txt"
    target.write_text(HEADER + "\n".join(pins(report)) + "\n", encoding="utf-8")
    print(f"{len(report['install'])} packages resolved -> {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
