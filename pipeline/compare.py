"""compare: the repo's experiments side by side, and their forget/retain Pareto front.

Not a DVC stage: it reads `dvc exp show --json` (all experiments of the workspace's
commit, or of every commit with --all-commits), a recorded copy of that JSON, or
explicit steered-metrics files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from pipeline.params import Params, ParamsOption
from sae_unlearn.errors import UserError, read_json_input
from sae_unlearn.io import read_json
from sae_unlearn.reporting.compare import (
    HALVES,
    Experiment,
    unlearning_score_line,
    write_comparison,
)
from sae_unlearn.reporting.constants import PAPER_MODEL
from sae_unlearn.reporting.format import flatten


def run_exp_show(all_commits: bool = False) -> list:
    dvc = shutil.which("dvc")
    cmd = [dvc] if dvc else [sys.executable, "-m", "dvc"]
    cmd += ["exp", "show", "--json"] + (["--all-commits"] if all_commits else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise UserError(
            f"`{' '.join(cmd)}` failed: {exc.stderr.strip() or exc.stdout.strip()}; run compare "
            "inside a DVC repository, or pass --exp-json / --metrics"
        ) from exc
    return json.loads(done.stdout)


def _rows(data: list) -> list[tuple[dict, str]]:
    """(record, default name) for every commit and experiment in `dvc exp show --json`.

    DVC 3.x: a list of commits, each {rev, name, data, error, experiments}, where
    experiments is a list of {name, executor, revs: [{rev, name, data, error, ...}]}
    (an experiment has one rev in DVC 3; older checkpoint experiments listed the newest first).
    """
    rows = []
    for commit in data or []:
        rows.append((commit, commit.get("name") or commit.get("rev", "")[:7]))
        for exp in commit.get("experiments") or []:
            revs = exp.get("revs") or []
            if revs:
                rows.append((revs[0], exp.get("name") or revs[0].get("name") or ""))
    return rows


def _metrics_of(data: Mapping, metrics_file: str) -> Mapping | None:
    entry = (data.get("metrics") or {}).get(metrics_file) or {}
    return entry.get("data") or None


def _params_of(data: Mapping) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for file, entry in (data.get("params") or {}).items():
        values = flatten((entry or {}).get("data") or {})
        # params.yaml keys stay bare; other params files are prefixed with their name.
        prefix = "" if file == "params.yaml" else f"{file}:"
        flat.update({f"{prefix}{k}": v for k, v in values.items()})
    return flat


def parse_exp_show(data: list, metrics_file: str) -> tuple[list[Experiment], list[str]]:
    """Experiments with steered metrics, and a line for each record that was skipped.

    The workspace is dropped when it equals a listed experiment (after `dvc exp run` or
    `dvc exp apply` it holds that experiment's results).
    """
    experiments: list[Experiment] = []
    skipped: list[str] = []
    workspace: Experiment | None = None
    for record, name in _rows(data):
        rev = str(record.get("rev", ""))
        label = "workspace" if rev == "workspace" else name or rev[:7]
        payload = record.get("data")
        if record.get("error") or not payload:
            error = record.get("error") or {}
            reason = error.get("msg", error) if isinstance(error, Mapping) else error
            skipped.append(f"{label}: error in dvc exp show ({reason or 'no data'})")
            continue
        metrics = _metrics_of(payload, metrics_file)
        if not metrics or "forget" not in metrics or "retain" not in metrics:
            skipped.append(f"{label}: no forget/retain results in {metrics_file} (not run yet)")
            continue
        exp = Experiment(
            label, _params_of(payload), metrics, rev="" if label == "workspace" else rev
        )
        if label == "workspace":
            workspace = exp
        else:
            experiments.append(exp)
    if workspace is not None:
        same = any(
            e.params == workspace.params and e.steered == workspace.steered for e in experiments
        )
        if same:
            skipped.append("workspace: same params and results as a listed experiment")
        else:
            experiments.insert(0, workspace)
    return experiments, skipped


def explicit_experiments(specs: list[str]) -> list[Experiment]:
    """`NAME=PATH` (or just PATH, named after its parent directory) steered-metrics files."""
    out = []
    for spec in specs:
        name, _, path = spec.rpartition("=")
        path_ = Path(path)
        if not path_.is_file():
            raise UserError(f"--metrics {spec}: {path_} does not exist")
        metrics = read_json(path_)
        if "forget" not in metrics or "retain" not in metrics:
            raise UserError(f"{path_} holds no forget/retain results; pass a steered metrics file")
        out.append(Experiment(name or path_.parent.name or path_.stem, {}, metrics))
    return out


def command(
    metrics: list[str] | None = typer.Option(
        None, "--metrics", help="NAME=PATH of a steered metrics JSON (repeat); skips DVC"
    ),
    exp_json: Path | None = typer.Option(None, help="a saved `dvc exp show --json` output"),
    all_commits: bool = typer.Option(False, help="experiments of all commits, not just HEAD"),
    metrics_file: str | None = typer.Option(None, help="steered metrics path inside the repo"),
    out_dir: Path | None = typer.Option(None, help="where compare.md/.csv and pareto.png go"),
    half: str = typer.Option(
        "all", help="all | dev | test: the questions accuracy is read on (choose on dev)"
    ),
    params: Path = ParamsOption,
) -> None:
    """Compare experiments: differing params, forget/retain accuracy, alignment, Pareto front,
    and SAEBench's unlearning score (from known-correct accuracy)."""
    p = Params.load(params)
    if half not in ("all", *HALVES):
        raise UserError(f"--half {half}: use all, {' or '.join(HALVES)}")
    if metrics:
        experiments, skipped = explicit_experiments(metrics), []
    else:
        data = _load_json(exp_json) if exp_json else run_exp_show(all_commits)
        mfile = p.pick(metrics_file, "evaluate.steered_metrics")
        experiments, skipped = parse_exp_show(data, str(mfile))
    names = [str(e.params.get("model.name", "")) for e in experiments]
    names.append(str(p.get("model.name")))
    reference = any(PAPER_MODEL in n for n in names)
    out = Path(p.pick(out_dir, "report.compare_dir"))
    table = write_comparison(
        experiments, out, reference, skipped, half=None if half == "all" else half
    )
    on_front = table["experiment"][table["pareto"]].tolist() if len(table) else []
    typer.echo(
        f"{len(table)} experiments -> {out}/compare.md, compare.csv, pareto.png; "
        f"Pareto front: {', '.join(on_front) or 'none'}"
    )
    if "pareto_near" in table.columns:
        near = table["experiment"][table["pareto_near"]].tolist()
        typer.echo(f"forget vs retain_near front (pareto_near.png): {', '.join(near) or 'none'}")
    score = unlearning_score_line(table) if len(table) else None
    if score:
        typer.echo(score)
    for line in skipped:
        typer.echo(f"skipped {line}")


def _load_json(path: Path) -> list:
    data = read_json_input(path, "`dvc exp show --json` output", "save `dvc exp show --json`")
    if not isinstance(data, list):
        raise UserError(f"{path} is not `dvc exp show --json` output (expected a list)")
    return data
