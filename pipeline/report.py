"""report: every stage's outputs -> reports/report.md, a self-contained report.html, plots."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from pipeline.params import Params, ParamsOption
from sae_unlearn.reporting.inputs import (
    ReportInputError,
    ReportOptions,
    load_inputs,
    stage_timings,
)
from sae_unlearn.reporting.report import write_report

DVC_YAML = Path("dvc.yaml")
# Where each stage's JSON lives when there is no dvc.yaml to read it from (library use,
# or a copy of the outputs elsewhere).
DEFAULT_STAGE_FILES = {
    "prepare-model": [],
    "prepare-data": [],
    "cache": ["metrics/cache.json"],
    "train-sae": ["metrics/sae.json"],
    "score": ["data/scores"],
    "select": ["data/selection"],
    "clamp-config": ["data/clamp"],
    "evaluate-baseline": ["metrics/baseline.json"],
    "evaluate": ["metrics/steered.json"],
    "attack": ["metrics/attack.json", "data/results/attack"],
}


def stage_files(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage of dvc.yaml, the paths it writes (outs and metrics), in DAG order."""
    if not dvc_yaml.is_file():
        return dict(DEFAULT_STAGE_FILES)
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    out: dict[str, list[str]] = {}
    for name, stage in stages.items():
        if name == "report" or not isinstance(stage, dict):
            continue
        paths = []
        for key in ("outs", "metrics"):
            for entry in stage.get(key) or []:
                paths.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
        out[name] = paths
    return out


def command(
    out_dir: Path | None = typer.Option(None, help="report directory (report.md/.html, plots/)"),
    cache_metrics: Path | None = typer.Option(None, help="cache summary JSON"),
    sae_metrics: Path | None = typer.Option(None, help="SAE metrics JSON"),
    baseline: Path | None = typer.Option(None, help="baseline metrics JSON"),
    steered: Path | None = typer.Option(None, help="steered metrics JSON"),
    attack: Path | None = typer.Option(None, help="attack metrics JSON"),
    attack_dir: Path | None = typer.Option(None, help="attack outputs (gcg_loss.csv, suffixes)"),
    scores_dir: Path | None = typer.Option(None, help="latents.parquet and contexts.parquet"),
    selection: Path | None = typer.Option(None, help="selected latents parquet"),
    clamp_dir: Path | None = typer.Option(None, help="clamp-config output (summary.json)"),
    dvc_yaml: Path = typer.Option(DVC_YAML, help="dvc.yaml, for which stage wrote which file"),
    params: Path = ParamsOption,
) -> None:
    """The run report: results card, setup, SAE quality, latents, accuracy, attacks, run times."""
    p = Params.load(params)
    attack_path = Path(p.pick(attack_dir, "attack.dir", "data/results/attack"))
    scores_path = Path(p.pick(scores_dir, "score.dir", "data/scores"))
    select_default = Path(p.get("select.dir", "data/selection")) / "selected.parquet"
    paths = {
        "cache": Path(p.pick(cache_metrics, "cache.metrics", "metrics/cache.json")),
        "sae": Path(p.pick(sae_metrics, "sae.metrics", "metrics/sae.json")),
        "baseline": Path(p.pick(baseline, "evaluate.baseline_metrics", "metrics/baseline.json")),
        "steered": Path(p.pick(steered, "evaluate.steered_metrics", "metrics/steered.json")),
        "attack": Path(p.pick(attack, "attack.metrics", "metrics/attack.json")),
        "gcg_loss": attack_path / "gcg_loss.csv",
        "suffixes": attack_path / "suffixes.json",
        "latents": scores_path / "latents.parquet",
        "contexts": scores_path / "contexts.parquet",
        "selected": Path(selection or select_default),
        "clamp": Path(p.pick(clamp_dir, "clamp.dir", "data/clamp")) / "summary.json",
    }
    if not paths["baseline"].is_file() and not paths["steered"].is_file():
        raise typer.BadParameter(
            f"neither {paths['baseline']} nor {paths['steered']} exists; run "
            "`sae-unlearn evaluate-baseline` and `sae-unlearn evaluate` first"
        )
    try:
        inputs = load_inputs(paths, p.data_dict, stage_timings(stage_files(dvc_yaml)))
    except ReportInputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    opts = ReportOptions(
        title=str(p.get("report.title", "sae-unlearn report")),
        contexts_per_latent=int(p.get("report.contexts_per_latent", 3)),
    )
    out = write_report(inputs, Path(p.pick(out_dir, "report.dir", "reports")), opts)
    missing = [name for name, path in paths.items() if not path.is_file()]
    typer.echo(f"report -> {out['markdown']}, {out['html']}")
    if missing:
        typer.echo(f"left out (missing inputs): {', '.join(missing)}")
