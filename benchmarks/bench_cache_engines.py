"""`make bench`, the sharded cache: bytes per token for each storage dtype, and tokens/s of
the `local` engine and of the `ray` engine with 1 and 2 model actors on the same tokens.

Each figure caches the forget corpus at one layer. The ray figures count from the first
parquet read to the manifest (documents tokenised, actors started and their model loaded,
shards written); the local one from tokenising to the manifest, the model already loaded.
Ray's own start (`ray.init`) is left out of both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from sae_unlearn.activations import CacheConfig, cache_corpus
from sae_unlearn.choices import CACHE_DTYPES


def dtype_bytes(model, tokenizer, texts, tmp: Path, layer: int, n_tokens: int) -> dict:
    """Bytes per token on disk (shards, zstd) for each `cache.dtype`, next to the raw vector."""
    out = {}
    for dtype in CACHE_DTYPES:
        cfg = CacheConfig(layers=(layer,), max_tokens=n_tokens, dtype=dtype)
        folder = tmp / f"dtype_{dtype}"
        summary = cache_corpus(model, tokenizer, texts, "forget", cfg, folder, progress=False)
        width = json.loads((folder / "manifest.json").read_text())["d_model"]
        out[dtype] = {
            "bytes_per_token": round(summary.bytes / summary.n_tokens, 1),
            "vector_bytes_per_token": width * (4 if dtype == "float32" else 2),
        }
    return out


def engine_speeds(
    model,
    tokenizer,
    corpus_file: Path,
    model_dir: Path,
    tmp: Path,
    layer: int,
    n_tokens: int,
    log: Callable[[str], None] = print,
) -> dict:
    """tokens/s of each engine on the same `n_tokens` (two shards, so two actors share them)."""
    import pandas as pd

    texts = pd.read_parquet(corpus_file)["text"].tolist()
    cfg = CacheConfig(layers=(layer,), max_tokens=n_tokens, shard_batches=max(1, n_tokens // 4096))
    folder = tmp / "engine_local"
    local = cache_corpus(model, tokenizer, texts, "forget", cfg, folder, progress=False)
    out = {"tokens": local.n_tokens, "shards": -(-local.n_sequences // cfg.shard_sequences)}
    out["local_tokens_per_s"] = local.tokens_per_second
    try:
        import ray

        from sae_unlearn.activations.ray_engine import RayConfig, cache_corpus_ray, start_ray
    except ImportError as exc:
        return {**out, "ray": f"skipped: {exc} (pip install 'sae-unlearn[ray]')"}
    for workers in (1, 2):
        log(f"ray engine, {workers} worker(s)")
        ray_cfg = RayConfig(workers=workers)
        start_ray(ray_cfg)
        start = time.perf_counter()
        folder = tmp / f"engine_ray_{workers}"
        summary = cache_corpus_ray(
            model_dir, corpus_file, "forget", cfg, folder, ray_cfg, progress=False
        )
        ray.shutdown()
        same = all(
            (folder / p.name).read_bytes() == p.read_bytes()
            for p in (tmp / "engine_local").iterdir()
        )
        out[f"ray_{workers}_workers_tokens_per_s"] = summary.tokens_per_second
        out[f"ray_{workers}_workers_wall_s"] = round(time.perf_counter() - start, 1)
        out[f"ray_{workers}_workers_same_bytes_as_local"] = same
    return out
