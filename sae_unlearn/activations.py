"""Residual-stream activation cache: model forward over corpora, streamed to parquet.

One parquet file per corpus, one row per token: `corpus`, `sequence_id`, `position`,
`token_id`, `is_special`, and one fixed-size float32 list column `resid_{L}` per cached
layer. Rows are written one row group per batch so memory stays flat as corpora grow,
and readers stream the file back row group by row group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.io import atomic_path
from sae_unlearn.models import capture_residuals, hidden_size, run_to_layers

TOKEN_COLUMNS = ["corpus", "sequence_id", "position", "token_id", "is_special"]
METADATA_KEY = b"sae_unlearn"


def resid_column(layer: int) -> str:
    return f"resid_{layer}"


@dataclass(frozen=True)
class CacheConfig:
    layers: tuple[int, ...]
    seq_len: int = 128
    batch_size: int = 16
    max_tokens: int = 60_000

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("cache.layers is empty; list at least the SAE layer")
        if self.seq_len < 2:
            raise ValueError(f"cache.seq_len={self.seq_len} must be at least 2")
        if self.batch_size < 1:
            raise ValueError(f"cache.batch_size={self.batch_size} must be at least 1")
        if self.max_tokens < self.seq_len:
            raise ValueError(
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


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    ids.update(tokenizer.all_special_ids)
    return sorted(i for i in ids if i is not None)


def tokenize_corpus(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    seq_len: int,
    max_tokens: int,
) -> torch.Tensor:
    """Pack documents into `[n, seq_len]` sequences, each starting with BOS.

    Documents are joined with EOS between them (as in sae-lens' token packing) so a
    sequence never mixes two documents without a boundary marker. The last partial
    sequence is dropped rather than padded, so every cached token saw real context.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    body = seq_len - 1 if bos is not None else seq_len
    n_max = max_tokens // seq_len
    stream: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
        if len(stream) >= n_max * body:
            break
    n = min(len(stream) // body, n_max)
    if n == 0:
        raise ValueError(
            f"the corpus has {len(stream)} tokens, fewer than one sequence of "
            f"cache.seq_len={seq_len}; add text or lower cache.seq_len"
        )
    chunks = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    if bos is not None:
        chunks = torch.cat([torch.full((n, 1), bos, dtype=torch.long), chunks], dim=1)
    return chunks


def _schema(layers: Sequence[int], d_model: int) -> pa.Schema:
    fields = [
        pa.field("corpus", pa.string()),
        pa.field("sequence_id", pa.int32()),
        pa.field("position", pa.int32()),
        pa.field("token_id", pa.int32()),
        pa.field("is_special", pa.bool_()),
    ]
    fields += [pa.field(resid_column(layer), pa.list_(pa.float32(), d_model)) for layer in layers]
    return pa.schema(fields)


def _vectors(array: np.ndarray, d_model: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(array, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, d_model)


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
    schema = _schema(layers, d_model).with_metadata({METADATA_KEY: json.dumps(metadata)})
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
                        columns[resid_column(layer)] = _vectors(vec, d_model)
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


def cache_metadata(path: str | Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise ValueError(
            f"{path} is not an sae-unlearn activation cache (no metadata); rerun the cache stage"
        )
    return json.loads(meta[METADATA_KEY])


def _check_layer_cached(path: str | Path, layer: int) -> None:
    layers = cache_metadata(path)["layers"]
    if layer not in layers:
        raise ValueError(
            f"{path} caches layers {layers}, not layer {layer}; add {layer} to cache.layers"
        )


def read_tokens(path: str | Path) -> pa.Table:
    """The token columns only (no activation vectors)."""
    return pq.read_table(path, columns=TOKEN_COLUMNS)


def iter_activations(
    path: str | Path, layer: int, include_special: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stream `(activations [n, d], token_rows [n])` row group by row group.

    `token_rows` are the row indices into the file, so callers can join results back
    to `read_tokens(path)`.
    """
    _check_layer_cached(path, layer)
    column = resid_column(layer)
    parquet = pq.ParquetFile(path)
    offset = 0
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=[column, "is_special"])
        n = table.num_rows
        flat = table.column(column).combine_chunks().flatten().to_numpy()
        acts = torch.from_numpy(flat.reshape(n, -1).copy())
        rows = torch.arange(offset, offset + n)
        if not include_special:
            keep = ~torch.from_numpy(table.column("is_special").to_numpy(zero_copy_only=False))
            acts, rows = acts[keep], rows[keep]
        offset += n
        yield acts, rows


def read_activations(
    path: str | Path, layer: int, include_special: bool = False, max_tokens: int | None = None
) -> torch.Tensor:
    """All (non-special by default) activations of one layer as a `[n, d]` float32 tensor."""
    parts, total = [], 0
    for acts, _ in iter_activations(path, layer, include_special):
        parts.append(acts)
        total += len(acts)
        if max_tokens is not None and total >= max_tokens:
            break
    if not parts:
        raise ValueError(f"{path} holds no tokens for layer {layer}")
    out = torch.cat(parts)
    return out[:max_tokens] if max_tokens is not None else out


def summary_dict(summaries: Sequence[CacheSummary]) -> dict:
    return {s.corpus: asdict(s) for s in summaries}
