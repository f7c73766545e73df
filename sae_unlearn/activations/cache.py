"""Caching residual activations: the model forward over a corpus, streamed to parquet.

Rows are written one row group per batch so memory stays flat as corpora grow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations.schema import (
    METADATA_KEY,
    cache_schema,
    resid_column,
    vector_array,
)
from sae_unlearn.activations.tokenize import special_token_ids, tokenize_corpus
from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_path
from sae_unlearn.models.capture import capture_residuals, run_to_layers
from sae_unlearn.models.layers import hidden_size


@dataclass(frozen=True)
class CacheConfig:
    layers: tuple[int, ...]
    seq_len: int = 128
    batch_size: int = 16
    max_tokens: int = 60_000

    def __post_init__(self) -> None:
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


@dataclass
class CacheSummary:
    corpus: str
    n_tokens: int
    n_sequences: int
    seconds: float
    tokens_per_second: float
    bytes: int


@torch.no_grad()
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
    """Run the model over `texts` and stream the residuals of `cfg.layers` to parquet."""
    layers = sorted(set(cfg.layers))
    d_model = hidden_size(model)
    device = next(model.parameters()).device
    sequences = tokenize_corpus(texts, tokenizer, cfg.seq_len, cfg.max_tokens)
    special = torch.tensor(special_token_ids(tokenizer), dtype=torch.long)
    metadata = {
        "model": model_name,
        "layers": layers,
        "d_model": d_model,
        "seq_len": cfg.seq_len,
        "corpus": corpus,
    }
    schema = cache_schema(layers, d_model).with_metadata({METADATA_KEY: json.dumps(metadata)})
    start = time.perf_counter()
    with atomic_path(out_path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        try:
            with capture_residuals(model, layers, stop_after_last=True) as captured:
                batches = range(0, len(sequences), cfg.batch_size)
                for lo in tqdm(batches, desc=f"cache {corpus}", disable=not progress):
                    ids = sequences[lo : lo + cfg.batch_size]
                    acts = run_to_layers(
                        model,
                        captured,
                        input_ids=ids.to(device),
                        attention_mask=torch.ones_like(ids, device=device),
                    )
                    n, t = ids.shape
                    columns = {
                        "corpus": pa.array([corpus] * (n * t), pa.string()),
                        "sequence_id": pa.array(
                            np.repeat(np.arange(lo, lo + n, dtype=np.int32), t)
                        ),
                        "position": pa.array(np.tile(np.arange(t, dtype=np.int32), n)),
                        "token_id": pa.array(ids.reshape(-1).numpy().astype(np.int32)),
                        "is_special": pa.array(torch.isin(ids, special).reshape(-1).numpy()),
                    }
                    for layer in layers:
                        vec = acts[layer].float().reshape(n * t, d_model).cpu().numpy()
                        columns[resid_column(layer)] = vector_array(vec, d_model)
                    writer.write_table(pa.Table.from_pydict(columns, schema=schema))
        finally:
            writer.close()
        size = tmp.stat().st_size
    seconds = time.perf_counter() - start
    n_tokens = int(sequences.numel())
    return CacheSummary(
        corpus=corpus,
        n_tokens=n_tokens,
        n_sequences=len(sequences),
        seconds=round(seconds, 3),
        tokens_per_second=round(n_tokens / seconds, 1),
        bytes=size,
    )


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
