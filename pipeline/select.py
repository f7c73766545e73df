"""select: the latents to clamp, from the latent statistics and `select.*`.

Drops latents whose retain frequency exceeds `select.retain_threshold`, ranks the rest by
`select.score` and writes the top `select.top_k` to `{select.dir}/selected.parquet`.
With `select.threshold_rate`, each latent also gets a gate threshold calibrated on the
retain windows (`windows.parquet` beside the statistics), which `gated_clamp` uses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.io import write_parquet
from sae_unlearn.selection import SelectConfig, select_latents


def command(
    stats: Path | None = typer.Option(None, help="latents.parquet from `sae-unlearn score`"),
    out_dir: Path | None = typer.Option(None, help="where selected.parquet goes"),
    score: str | None = typer.Option(None, help="forget_freq | freq_ratio | log_odds"),
    top_k: int | None = typer.Option(None, help="latents to select"),
    retain_threshold: float | None = typer.Option(None, help="max retain firing frequency"),
    min_forget_freq: float | None = typer.Option(None, help="min forget firing frequency"),
    threshold_rate: float | None = typer.Option(
        None, help="retain window fraction a calibrated threshold may exceed"
    ),
    params: Path = ParamsOption,
) -> None:
    """The latents to clamp: retain-frequency filter, rank by a score, top k."""
    with record_run_time() as run_time:
        p = Params.load(params)
        threshold = p.pick(retain_threshold, "select.retain_threshold", 0.01)
        rate = p.pick(threshold_rate, "select.threshold_rate", None)
        cfg = SelectConfig(
            top_k=int(p.pick(top_k, "select.top_k")),
            score=str(p.pick(score, "select.score", "forget_freq")),
            retain_threshold=None if threshold is None else float(threshold),
            min_forget_freq=float(p.pick(min_forget_freq, "select.min_forget_freq", 0.0)),
            eps=float(p.get("select.eps", 1e-4)),
            threshold_rate=None if rate is None else float(rate),
        )
        stats_path = (
            Path(stats) if stats else Path(p.get("score.dir", "data/scores")) / "latents.parquet"
        )
        if not stats_path.exists():
            raise typer.BadParameter(f"{stats_path} does not exist; run `sae-unlearn score` first")
        windows_path = stats_path.parent / "windows.parquet"
        windows = None
        if cfg.needs_windows:
            if not windows_path.exists():
                raise typer.BadParameter(
                    f"{windows_path} does not exist; select.threshold_rate and the "
                    "forget_window_freq score need it: rerun `sae-unlearn score`"
                )
            windows = pd.read_parquet(windows_path)
        selected = select_latents(
            pd.read_parquet(stats_path), cfg, source=str(stats_path), windows=windows
        )
        out_path = Path(p.pick(out_dir, "select.dir")) / "selected.parquet"
        write_parquet(out_path, selected)
        typer.echo(
            f"selected {len(selected)} latents by {cfg.score} "
            f"(retain_freq <= {cfg.retain_threshold}, threshold_rate {cfg.threshold_rate}) "
            f"-> {out_path}"
        )
        typer.echo(
            selected[
                ["rank", "latent", "forget_freq", "retain_freq", "threshold", "score"]
            ].to_string(index=False)
        )
        run_time["dir"] = out_path.parent
