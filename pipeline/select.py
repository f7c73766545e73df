"""select: the latents to clamp, from the latent statistics and `select.*`.

Drops latents whose retain frequency exceeds `select.retain_threshold`, ranks the rest by
`select.score` and writes the top `select.top_k` to `{select.dir}/selected.parquet`.
With `select.threshold_rate`, each latent also gets a gate threshold calibrated on the
retain windows (`windows.parquet` beside the statistics), which `gated_clamp` uses.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.io import write_parquet
from sae_unlearn.selection.config import SelectConfig
from sae_unlearn.selection.files import LATENTS_FILE, SELECTED_FILE, read_scores
from sae_unlearn.selection.ranking import select_latents


def command(
    stats: Path | None = typer.Option(None, help="latents.parquet from `sae-unlearn score`"),
    out_dir: Path | None = typer.Option(None, help="where selected.parquet goes"),
    score: str | None = typer.Option(
        None, help="forget_freq | freq_ratio | log_odds | forget_window_freq | crisp"
    ),
    top_k: int | None = typer.Option(None, help="latents to select"),
    retain_threshold: float | None = typer.Option(None, help="max retain firing frequency"),
    min_forget_freq: float | None = typer.Option(None, help="min forget firing frequency"),
    threshold_rate: float | None = typer.Option(
        None, help="retain window fraction a calibrated threshold may exceed"
    ),
    params: Path = ParamsOption,
) -> None:
    """The latents to clamp: retain-frequency filter, rank by a score, top k."""
    with record_run_time():
        p = Params.load(params)
        threshold = p.pick(retain_threshold, "select.retain_threshold")
        rate = p.pick(threshold_rate, "select.threshold_rate")
        cfg = SelectConfig(
            top_k=int(p.pick(top_k, "select.top_k")),
            score=str(p.pick(score, "select.score")),
            retain_threshold=None if threshold is None else float(threshold),
            min_forget_freq=float(p.pick(min_forget_freq, "select.min_forget_freq")),
            min_near_ratio=p.get("select.min_near_ratio"),
            eps=float(p.get("select.eps")),
            threshold_rate=None if rate is None else float(rate),
        )
        stats_path = Path(stats or Path(p.get("score.dir")) / LATENTS_FILE)
        latents, windows = read_scores(stats_path, with_windows=cfg.needs_windows)
        selected = select_latents(latents, cfg, source=str(stats_path), windows=windows)
        out_path = Path(p.pick(out_dir, "select.dir")) / SELECTED_FILE
        write_parquet(out_path, selected)
        typer.echo(
            f"selected {len(selected)} latents by {cfg.score} "
            f"(retain_freq <= {cfg.retain_threshold}, threshold_rate {cfg.threshold_rate}) "
            f"-> {out_path}"
        )
        columns = ["rank", "latent", "forget_freq", "retain_freq", "retain_near_freq"]
        columns = [c for c in columns if c in selected.columns] + ["threshold", "score"]
        typer.echo(selected[columns].to_string(index=False))
