"""cache: residual activations of every prepared corpus (forget, retain and, when prepared,
retain_near) at the cached layers, one folder of parquet shards and a manifest each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.activations.cache import CacheConfig, cache_corpus, summary_dict
from sae_unlearn.activations.remote import check_store
from sae_unlearn.activations.schema import CORPORA, REQUIRED_CORPORA
from sae_unlearn.errors import UserError
from sae_unlearn.io import write_json
from sae_unlearn.prepared import prepared_path


def read_corpus_texts(path: Path) -> list[str]:
    if not path.exists():
        raise UserError(f"{path} does not exist; run `sae-unlearn prepare-data` first")
    frame = pd.read_parquet(path)
    if "text" not in frame.columns:
        raise UserError(
            f"{path} has no `text` column (columns: {list(frame.columns)}); "
            "produce it with `sae-unlearn prepare-data`"
        )
    return frame["text"].astype(str).tolist()


def remove_stale(out_path: Path, corpora: dict[str, Path]) -> None:
    """An optional corpus that was not prepared is not cached, and a stale cache of it goes;
    so do single-file caches of the layout before shards (`{corpus}.parquet`)."""
    for corpus in CORPORA:
        (out_path / f"{corpus}.parquet").unlink(missing_ok=True)
        if corpus not in corpora:
            shutil.rmtree(out_path / corpus, ignore_errors=True)


def cache_local(p: Params, cfg: CacheConfig, corpora: dict[str, Path], model_path: Path, out):
    from sae_unlearn.models.layers import check_layer
    from sae_unlearn.models.loading import load_model

    texts = {corpus: read_corpus_texts(path) for corpus, path in corpora.items()}
    model, tokenizer = load_model(str(model_path), p.get("model.dtype"))
    for layer in cfg.layers:
        check_layer(model, layer, what="cache.layers entry")
    for corpus, corpus_texts in texts.items():
        yield cache_corpus(
            model, tokenizer, corpus_texts, corpus, cfg, out / corpus, str(p.get("model.name"))
        )


def cache_ray(p: Params, cfg: CacheConfig, corpora: dict[str, Path], model_path: Path, out):
    from sae_unlearn.activations.ray_engine import RayConfig, cache_corpus_ray, start_ray

    ray_cfg = RayConfig(
        p.get("cache.ray_address"), p.get("cache.ray_workers"), p.get("cache.ray_gpus")
    )
    for path in corpora.values():
        if not path.exists():
            raise UserError(f"{path} does not exist; run `sae-unlearn prepare-data` first")
    started = start_ray(ray_cfg)  # one Ray for every corpus
    try:
        for corpus, path in corpora.items():
            yield cache_corpus_ray(
                model_path,
                path,
                corpus,
                cfg,
                out / corpus,
                ray_cfg,
                model_dtype=p.get("model.dtype"),
                model_name=str(p.get("model.name")),
            )
    finally:
        if started:
            import ray

            ray.shutdown()


def command(
    model_dir: Path | None = typer.Option(None, help="model directory from prepare-model"),
    data_dir: Path | None = typer.Option(None, help="prepared data directory"),
    out_dir: Path | None = typer.Option(None, help="where {forget,retain,retain_near}/ go"),
    metrics: Path | None = typer.Option(None, help="cache summary JSON"),
    layers: list[int] | None = typer.Option(None, "--layer", help="layers to cache (repeat)"),
    engine: str | None = typer.Option(None, help="local | ray (cache.engine)"),
    max_tokens: int | None = typer.Option(None, help="tokens per corpus (cache.max_tokens)"),
    dtype: str | None = typer.Option(None, help="float32 | float16 | bfloat16 (cache.dtype)"),
    shards_url: str | None = typer.Option(
        None, help="object store for the shards, e.g. s3://bucket/prefix (cache.shards_url)"
    ),
    params: Path = ParamsOption,
) -> None:
    """Residual activations of every prepared corpus, streamed to parquet shards."""
    p = Params.load(params)
    # sae.layer is deliberately not a dependency of this stage: a layer sweep over
    # already-cached layers must not rerun the model forward (train-sae checks membership).
    cached_layers = list(layers) if layers else list(p.get("cache.layers"))
    cfg = CacheConfig(
        layers=tuple(sorted(set(cached_layers))),
        seq_len=p.get("cache.seq_len"),
        batch_size=p.get("cache.batch_size"),
        max_tokens=p.pick(max_tokens, "cache.max_tokens"),
        dtype=p.pick(dtype, "cache.dtype"),
        shard_batches=p.get("cache.shard_batches"),
        shards_url=p.pick(shards_url, "cache.shards_url"),
    )
    if cfg.shards_url:
        check_store(cfg.shards_url)  # before the model forward
    run = {"local": cache_local, "ray": cache_ray}.get(p.pick(engine, "cache.engine"))
    if run is None:
        raise UserError(f"--engine={engine!r}: use local or ray (cache.engine)")
    data_path = Path(p.pick(data_dir, "data.dir"))
    out_path = Path(p.pick(out_dir, "cache.dir"))
    corpora = {c: prepared_path(data_path, c, "corpus") for c in CORPORA}
    corpora = {c: f for c, f in corpora.items() if c in REQUIRED_CORPORA or f.exists()}
    remove_stale(out_path, corpora)
    model_path = Path(p.pick(model_dir, "model.dir"))
    summaries = []
    with record_run_time() as timings:
        for s in run(p, cfg, corpora, model_path, out_path):
            summaries.append(s)
            timings[f"{s.corpus}_tokens_per_second"] = s.tokens_per_second
            typer.echo(f"cached {s.corpus}: {s.n_tokens} tokens at {s.tokens_per_second} tok/s")
    write_json(p.pick(metrics, "cache.metrics"), summary_dict(summaries, cfg.layers))
