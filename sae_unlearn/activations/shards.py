"""One shard of the cache: the model forward over a run of sequences, streamed to parquet.

Both engines write every shard with this function (the local one in its own process, the
Ray one in each model actor), so they write the same bytes for the same sequences. Rows are
written one row group per batch, so memory stays flat as shards grow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from sae_unlearn.activations.layout import ShardInfo, describe_shard
from sae_unlearn.activations.remote import publish_shard
from sae_unlearn.activations.schema import (
    METADATA_KEY,
    cache_schema,
    resid_column,
    vector_array,
)
from sae_unlearn.models.capture import capture_residuals, run_to_layers


def shard_schema(meta: dict) -> pa.Schema:
    """The shards' schema, carrying the cache's facts (`meta`) as its metadata."""
    schema = cache_schema(meta["layers"], meta["d_model"], meta["dtype"])
    return schema.with_metadata({METADATA_KEY: json.dumps(meta)})


@torch.no_grad()
def write_shard(
    model: nn.Module,
    sequences: torch.Tensor,
    first_sequence: int,
    special: torch.Tensor,
    meta: dict,
    batch_size: int,
    out_file: Path,
    store_url: str | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> ShardInfo:
    """Residuals of `meta["layers"]` for `sequences` `[n, seq_len]` (whose first is sequence
    `first_sequence` of the corpus) in `out_file`, one row group per `batch_size` sequences;
    `on_batch(n)` after each batch of n sequences (a progress bar's update). With a
    `store_url`, the shard is then uploaded there and its local copy removed (`remote`)."""
    layers, d_model, dtype, corpus = meta["layers"], meta["d_model"], meta["dtype"], meta["corpus"]
    schema = shard_schema(meta)
    device = next(model.parameters()).device
    writer = pq.ParquetWriter(out_file, schema, compression="zstd")
    try:
        with capture_residuals(model, layers, stop_after_last=True) as captured:
            for lo in range(0, len(sequences), batch_size):
                ids = sequences[lo : lo + batch_size]
                acts = run_to_layers(
                    model,
                    captured,
                    input_ids=ids.to(device),
                    attention_mask=torch.ones_like(ids, device=device),
                )
                n, t = ids.shape
                first = first_sequence + lo
                columns = {
                    "corpus": pa.array([corpus] * (n * t), pa.string()),
                    "sequence_id": pa.array(
                        np.repeat(np.arange(first, first + n, dtype=np.int32), t)
                    ),
                    "position": pa.array(np.tile(np.arange(t, dtype=np.int32), n)),
                    "token_id": pa.array(ids.reshape(-1).numpy().astype(np.int32)),
                    "is_special": pa.array(torch.isin(ids, special).reshape(-1).numpy()),
                }
                for layer in layers:
                    vec = acts[layer].float().reshape(n * t, d_model).cpu()
                    columns[resid_column(layer)] = vector_array(vec, d_model, dtype)
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                if on_batch is not None:
                    on_batch(n)
    finally:
        writer.close()
    info = describe_shard(out_file, sequences.numel(), first_sequence, len(sequences))
    return publish_shard(out_file, info, store_url) if store_url else info
