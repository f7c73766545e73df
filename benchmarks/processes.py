"""Peak memory of a piece of work in a fresh Python process, as `make bench` measures it:
the process's own high-water mark, free of what the benchmark process already holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb(code: str, what: str) -> float:
    """Run `code` in a fresh Python in the project root; its peak RSS in MB (`what` names
    the work in the error when the process fails)."""
    code += "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-4000:]}")
    return round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)  # ru_maxrss is in kB
