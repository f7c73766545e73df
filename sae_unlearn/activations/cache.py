"""Caching residual activations with the `local` engine: the model forward over a corpus in
this process, shard after shard, into one corpus folder written whole (see `layout`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations.layout import plan_shards, shard_name, write_manifest
from sae_unlearn.activations.remote import corpus_store
from sae_unlearn.activations.schema import check_dtype
from sae_unlearn.activations.shards import write_shard
from sae_unlearn.activations.tokenize import special_token_ids, tokenize_corpus
from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_dir
from sae_unlearn.models.layers import hidden_size


@dataclass(frozen=True)
class CacheConfig:
    layers: tuple[int, ...]
    seq_len: int = 128
    batch_size: int = 16
    max_tokens: int = 60_000
    dtype: str = "float32"  # storage; readers upcast to float32
    # Whole batches per shard, so each shard's row groups are the batches the model ran.
    shard_batches: int = 64
    # None: shards beside their manifests; a URL or absolute path: shards there (`remote`).
    shards_url: str | None = None

    def __post_init__(self) -> None:
        check_dtype(self.dtype)
        if not self.layers:
            raise UserError("cache.layers is empty; list at least the SAE layer")
        if self.seq_len < 2:
            raise UserError(f"cache.seq_len={self.seq_len} must be at least 2")
        if self.batch_size < 1:
            raise UserError(f"cache.batch_size={self.batch_size} must be at least 1")
        if self.max_tokens < self.seq_len:
            raise UserError(
                f"cache.max_tokens={self.max_tokens} is below cache.seq_len={self.seq_len}"
            )
        if self.shard_batches < 1:
            raise UserError(f"cache.shard_batches={self.shard_batches} must be at least 1")

    @property
    def shard_sequences(self) -> int:
        return self.shard_batches * self.batch_size


@dataclass
class CacheSummary:
    corpus: str
    n_tokens: int
    n_sequences: int
    seconds: float
    tokens_per_second: float
    bytes: int


def cache_meta(
    model_name: str, layers: Sequence[int], d_model: int, corpus: str, cfg: CacheConfig
) -> dict:
    """The cache's facts, recorded in each shard and in the manifest."""
    return {
        "model": model_name,
        "layers": sorted(set(layers)),
        "d_model": d_model,
        "seq_len": cfg.seq_len,
        "corpus": corpus,
        "dtype": cfg.dtype,
    }


def summarise(corpus: str, manifest: dict, seconds: float) -> CacheSummary:
    n_tokens = int(manifest["n_rows"])
    return CacheSummary(
        corpus=corpus,
        n_tokens=n_tokens,
        n_sequences=int(manifest["n_sequences"]),
        seconds=round(seconds, 3),
        tokens_per_second=round(n_tokens / max(seconds, 1e-9), 1),
        bytes=int(manifest["bytes"]),
    )


def cache_corpus(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    corpus: str,
    cfg: CacheConfig,
    out_path: str | Path,
    model_name: str = "",
    progress: bool = True,
) -> CacheSummary:
    """Run the model over `texts` and write the residuals of `cfg.layers` to the corpus
    folder `out_path` (shards and manifest, or the manifest alone with `cfg.shards_url`),
    replacing it whole only when all is written."""
    meta = cache_meta(model_name, cfg.layers, hidden_size(model), corpus, cfg)
    sequences = tokenize_corpus(texts, tokenizer, cfg.seq_len, cfg.max_tokens)
    special = torch.tensor(special_token_ids(tokenizer), dtype=torch.long)
    store = corpus_store(cfg.shards_url, corpus) if cfg.shards_url else None
    start = time.perf_counter()
    with atomic_dir(out_path) as tmp:
        shards = []
        ranges = plan_shards(len(sequences), cfg.shard_sequences)
        # per batch, not per shard: a shard of the default size holds a whole small corpus
        bar = tqdm(total=len(sequences), desc=f"cache {corpus}", unit="seq", disable=not progress)
        with bar:
            for index, (lo, hi) in enumerate(ranges):
                out_file = tmp / shard_name(index)
                args = (model, sequences[lo:hi], lo, special, meta, cfg.batch_size, out_file)
                shards.append(write_shard(*args, store, on_batch=bar.update))
        manifest = write_manifest(tmp, meta, shards, store)
    return summarise(corpus, manifest, time.perf_counter() - start)


def summary_dict(summaries: Sequence[CacheSummary], layers: Sequence[int]) -> dict:
    """The cache metrics: one entry per corpus, the cached layers and the token total.
    Wall-clock figures stay out, so the metrics file hashes the same on every run."""
    timing = {"seconds", "tokens_per_second"}
    summary: dict = {
        s.corpus: {k: v for k, v in asdict(s).items() if k not in timing} for s in summaries
    }
    summary["layers"] = list(layers)
    summary["total_tokens"] = sum(s.n_tokens for s in summaries)
    return summary
