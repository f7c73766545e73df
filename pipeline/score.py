"""score: per-latent firing statistics on the forget and retain caches, and top contexts.

Writes `{score.dir}/latents.parquet` (one row per latent: frequency, mean and max
activation on each corpus, special tokens excluded) and `{score.dir}/contexts.parquet`
(the highest-activating token contexts of the best-ranked latents, the firing token
in its own column) and `{score.dir}/windows.parquet` (each latent's nonzero maxima over
windows of `score.window` tokens, per corpus, for select's threshold calibration).
Contexts are kept for the latents that select's rule (`select.*`) ranks first under each
of `score.rankings`. Contexts are decoded with the tokenizer saved in `model.dir`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from transformers import AutoTokenizer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.errors import UserError
from sae_unlearn.models import resolve_device
from sae_unlearn.saes import load_sae_dir
from sae_unlearn.selection.config import RULE_FIELDS, ScoreConfig, SelectConfig
from sae_unlearn.selection.files import cache_paths, write_scores
from sae_unlearn.selection.scoring import score_latents


def command(
    cache_dir: Path | None = typer.Option(None, help="activation cache directory"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory (sae-lens format)"),
    model_dir: Path | None = typer.Option(None, help="model directory (its tokenizer decodes)"),
    out_dir: Path | None = typer.Option(None, help="where latents/contexts.parquet go"),
    layer: int | None = typer.Option(None, help="hook layer the SAE reads"),
    batch_size: int | None = typer.Option(None, help="tokens per SAE encode"),
    top_contexts: int | None = typer.Option(None, help="contexts kept per latent and corpus"),
    context_latents: int | None = typer.Option(None, help="latents per ranking with contexts"),
    context_window: int | None = typer.Option(None, help="tokens either side of the token"),
    window: int | None = typer.Option(None, help="tokens per window of the window maxima"),
    rankings: list[str] | None = typer.Option(None, "--ranking", help="score to rank by (repeat)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:i]"),
    params: Path = ParamsOption,
) -> None:
    """Per-latent firing statistics on the forget and retain caches, and top contexts."""
    with record_run_time():
        p = Params.load(params)
        cfg = ScoreConfig(
            layer=int(p.pick(layer, "sae.layer")),
            batch_size=int(p.pick(batch_size, "score.batch_size")),
            top_contexts=int(p.pick(top_contexts, "score.top_contexts")),
            context_latents=int(p.pick(context_latents, "score.context_latents")),
            context_window=int(p.pick(context_window, "score.context_window")),
            window=int(p.pick(window, "score.window")),
            rankings=tuple(p.pick(rankings or None, "score.rankings")),
            # select's rule itself, so the selected latents are among those with contexts
            select=SelectConfig(**{name: p.get(f"select.{name}") for name in RULE_FIELDS}),
        )
        paths = cache_paths(Path(p.pick(cache_dir, "cache.dir")))
        sae_path = Path(p.pick(sae_dir, "sae.dir"))
        model_path = Path(p.pick(model_dir, "model.dir"))
        out_path = Path(p.pick(out_dir, "score.dir"))
        if not model_path.is_dir():
            raise UserError(
                f"model directory {model_path} does not exist; run `sae-unlearn prepare-model`"
            )
        sae = load_sae_dir(sae_path, device=str(resolve_device(device)))
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        start = time.perf_counter()
        result = score_latents(sae, paths, tokenizer, cfg)
        seconds = time.perf_counter() - start
        write_scores(out_path, result.latents, result.contexts, result.windows)
        typer.echo(f"{result.summary(seconds)} -> {out_path}")
