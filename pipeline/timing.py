"""Stage run times, kept out of every DVC output.

Wall-clock seconds inside an output (or a metrics file) would change its hash on every run,
so two runs of the same DAG could never agree in dvc.lock. Each stage instead merges its
seconds (and any sub-timings it reports) into `logs/timings.json`, which no stage declares:
`make bench` and README read it; the report, a DVC output, does not. Stages of a queue run
with `-j 2` write it at once, so each merge holds a lock; `SAE_UNLEARN_TIMINGS` moves the
file (the tests point it at a temporary folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.main import get_current_context

from sae_unlearn.io import write_json

TIMINGS = Path("logs/timings.json")
TIMINGS_ENV = "SAE_UNLEARN_TIMINGS"


def timings_path() -> Path:
    return Path(os.environ.get(TIMINGS_ENV) or TIMINGS)


def read_timings(path: Path | None = None) -> dict:
    path = path or timings_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def process_seconds() -> float:
    """Seconds since this process started: a stage's imports and model loading, which its
    own `seconds` leave out, included (what a stage costs a `dvc repro`, but DVC's own work)."""
    import psutil

    return time.time() - psutil.Process().create_time()


@contextmanager
def record_run_time(path: Path | None = None, stage: str | None = None) -> Iterator[dict]:
    """Time the block and record it under `stage`, by default the running sub-command's
    name, with the process's seconds so far (`process_seconds`); entries the block adds to
    the yielded dict (e.g. per-phase seconds) are recorded beside it."""
    holder: dict = {}
    start = time.perf_counter()
    yield holder
    # The running sub-command names the stage. Typer ships its own copy of click, so the
    # context is typer's (plain `click.get_current_context` sees none).
    ctx = get_current_context(silent=True)
    if stage is None:
        stage = ctx.info_name if ctx is not None and ctx.info_name else "sae-unlearn"
    path = path or timings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "seconds": round(time.perf_counter() - start, 1),
        "process_seconds": round(process_seconds(), 1),
        **holder,
    }
    # Read, merge and replace under one lock: two stages finishing at once both keep theirs.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        timings = read_timings(path)
        timings[stage] = entry
        write_json(path, timings)
