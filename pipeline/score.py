"""score: per-latent firing statistics on the forget and retain caches, and top contexts.

Writes `{score.dir}/latents.parquet` (one row per latent: frequency, mean and max
activation on each corpus, special tokens excluded) and `{score.dir}/contexts.parquet`
(the highest-activating token contexts of the best-ranked latents, the firing token
in its own column) and `{score.dir}/windows.parquet` (each latent's nonzero maxima over
windows of `score.window` tokens, per corpus, for select's threshold calibration).
Contexts are decoded with the tokenizer saved in `model.dir`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from transformers import AutoTokenizer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.io import write_parquet
from sae_unlearn.models import resolve_device
from sae_unlearn.saes import load_sae_dir
from sae_unlearn.selection import CORPORA, ScoreConfig, score_latents


def _cache_paths(cache_dir: Path) -> dict[str, Path]:
    paths = {corpus: cache_dir / f"{corpus}.parquet" for corpus in CORPORA}
    for path in paths.values():
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist; run `sae-unlearn cache` first")
    return paths


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
    with record_run_time() as run_time:
        p = Params.load(params)
        threshold = p.get("score.retain_threshold", 0.01)
        rate = p.get("score.threshold_rate", None)
        cfg = ScoreConfig(
            layer=int(p.pick(layer, "sae.layer")),
            batch_size=int(p.pick(batch_size, "score.batch_size", 4096)),
            top_contexts=int(p.pick(top_contexts, "score.top_contexts", 10)),
            context_latents=int(p.pick(context_latents, "score.context_latents", 50)),
            context_window=int(p.pick(context_window, "score.context_window", 12)),
            window=int(p.pick(window, "score.window", 32)),
            rankings=tuple(
                p.pick(rankings or None, "score.rankings", ["forget_freq", "freq_ratio"])
            ),
            retain_threshold=None if threshold is None else float(threshold),
            min_forget_freq=float(p.get("score.min_forget_freq", 0.0)),
            eps=float(p.get("score.eps", 1e-4)),
            threshold_rate=None if rate is None else float(rate),
        )
        paths = _cache_paths(Path(p.pick(cache_dir, "cache.dir")))
        sae_path = Path(p.pick(sae_dir, "sae.dir"))
        model_path = Path(p.pick(model_dir, "model.dir"))
        out_path = Path(p.pick(out_dir, "score.dir"))
        if not model_path.is_dir():
            raise typer.BadParameter(
                f"model directory {model_path} does not exist; run `sae-unlearn prepare-model`"
            )
        sae = load_sae_dir(sae_path, device=str(resolve_device(device)))
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        start = time.perf_counter()
        result = score_latents(sae, paths, tokenizer, cfg)
        seconds = time.perf_counter() - start
        write_parquet(out_path / "latents.parquet", result.latents)
        write_parquet(out_path / "contexts.parquet", result.contexts)
        write_parquet(out_path / "windows.parquet", result.windows)
        table = result.latents
        dead = int(((table["forget_freq"] == 0) & (table["retain_freq"] == 0)).sum())
        tokens = ", ".join(f"{c} {n}" for c, n in result.n_tokens.items())
        typer.echo(
            f"scored {len(table)} latents on {tokens} non-special tokens in {seconds:.1f}s "
            f"({dead} never fire); contexts for {result.contexts['latent'].nunique()} latents "
            f"-> {out_path}"
        )
        run_time["dir"] = out_path
