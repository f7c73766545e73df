"""select: the latents to clamp, from the latent statistics and `select.*`.

Drops latents whose retain frequency exceeds `select.retain_threshold`, ranks the rest by
`select.score` and writes the top `select.top_k` to `{select.dir}/selected.parquet`.
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
    params: Path = ParamsOption,
) -> None:
    """The latents to clamp: retain-frequency filter, rank by a score, top k."""
    with record_run_time() as run_time:
        p = Params.load(params)
        threshold = p.pick(retain_threshold, "select.retain_threshold", 0.01)
        cfg = SelectConfig(
            top_k=int(p.pick(top_k, "select.top_k")),
            score=str(p.pick(score, "select.score", "forget_freq")),
            retain_threshold=None if threshold is None else float(threshold),
            min_forget_freq=float(p.pick(min_forget_freq, "select.min_forget_freq", 0.0)),
            eps=float(p.get("select.eps", 1e-4)),
        )
        stats_path = (
            Path(stats) if stats else Path(p.get("score.dir", "data/scores")) / "latents.parquet"
        )
        if not stats_path.exists():
            raise typer.BadParameter(f"{stats_path} does not exist; run `sae-unlearn score` first")
        selected = select_latents(pd.read_parquet(stats_path), cfg, source=str(stats_path))
        out_path = Path(p.pick(out_dir, "select.dir")) / "selected.parquet"
        write_parquet(out_path, selected)
        typer.echo(
            f"selected {len(selected)} latents by {cfg.score} "
            f"(retain_freq <= {cfg.retain_threshold}) -> {out_path}"
        )
        typer.echo(
            selected[["rank", "latent", "forget_freq", "retain_freq", "score"]].to_string(
                index=False
            )
        )
        run_time["dir"] = out_path.parent
