"""report: every stage's outputs -> reports/report.md, a self-contained report.html, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption, family_metrics_path
from pipeline.timing import record_run_time
from sae_unlearn.choices import ATTACK_FAMILIES
from sae_unlearn.errors import UserError
from sae_unlearn.reporting.inputs import ReportOptions, load_inputs
from sae_unlearn.reporting.report import write_report


def command(
    out_dir: Path | None = typer.Option(None, help="report directory (report.md/.html, plots/)"),
    cache_metrics: Path | None = typer.Option(None, help="cache summary JSON"),
    sae_metrics: Path | None = typer.Option(None, help="SAE metrics JSON"),
    baseline: Path | None = typer.Option(None, help="baseline metrics JSON"),
    steered: Path | None = typer.Option(None, help="steered metrics JSON"),
    attacks_dir: Path | None = typer.Option(
        None, help="attack families' joined outputs (gcg/, generation/)"
    ),
    scores_dir: Path | None = typer.Option(None, help="latents.parquet and contexts.parquet"),
    selection: Path | None = typer.Option(None, help="selected latents parquet"),
    clamp_dir: Path | None = typer.Option(None, help="clamp-config output (summary.json)"),
    params: Path = ParamsOption,
) -> None:
    """The run report: results card, setup, SAE quality, latents, accuracy, attacks."""
    with record_run_time():
        p = Params.load(params)
        attacks_path = Path(p.pick(attacks_dir, "attack.families_dir"))
        scores_path = Path(p.pick(scores_dir, "score.dir"))
        select_default = Path(p.get("select.dir")) / "selected.parquet"
        paths = {
            "cache": Path(p.pick(cache_metrics, "cache.metrics")),
            "sae": Path(p.pick(sae_metrics, "sae.metrics")),
            "baseline": Path(p.pick(baseline, "evaluate.baseline_metrics")),
            "steered": Path(p.pick(steered, "evaluate.steered_metrics")),
            **{f"attack_{family}": family_metrics_path(p, family) for family in ATTACK_FAMILIES},
            "gcg_suffixes": attacks_path / "gcg" / "suffixes.json",
            "gcg_losses": attacks_path / "gcg" / "losses.json",
            "samples": attacks_path / "generation" / "samples.json",
            "latents": scores_path / "latents.parquet",
            "contexts": scores_path / "contexts.parquet",
            "selected": Path(selection or select_default),
            "clamp": Path(p.pick(clamp_dir, "clamp.dir")) / "summary.json",
            "steered_results": Path(p.get("evaluate.dir")) / "steered",
        }
        if not paths["baseline"].is_file() and not paths["steered"].is_file():
            raise UserError(
                f"neither {paths['baseline']} nor {paths['steered']} exists; run "
                "`sae-unlearn evaluate-baseline` and `sae-unlearn evaluate` first"
            )
        inputs = load_inputs(paths, p.data_dict)
        opts = ReportOptions(
            title=str(p.get("report.title")),
            contexts_per_latent=int(p.get("report.contexts_per_latent")),
        )
        out = write_report(inputs, Path(p.pick(out_dir, "report.dir")), opts)
        missing = [name for name, path in paths.items() if not path.exists()]
        typer.echo(f"report -> {out['markdown']}, {out['html']}")
        if missing:
            typer.echo(f"left out (missing inputs): {', '.join(missing)}")
