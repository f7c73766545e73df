"""Stage run time, recorded next to the stage's outputs so the report can show it.

DVC records no durations, and putting seconds into metrics files would make every rerun
look like a metrics change; so each stage writes `run.json` into its output directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sae_unlearn.io import write_json


@contextmanager
def record_run_time(out_dir: Path | str | None = None) -> Iterator[dict]:
    """Time the block; write `{"seconds": ...}` to `out_dir/run.json` (set `holder["dir"]`
    inside the block when the directory is only known there)."""
    holder: dict = {"dir": out_dir}
    start = time.perf_counter()
    yield holder
    if holder["dir"] is not None:
        seconds = round(time.perf_counter() - start, 1)
        write_json(Path(holder["dir"]) / "run.json", {"seconds": seconds})
