"""Reading an activation cache back: its metadata, token columns and per-layer activations."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from sae_unlearn.activations.schema import (
    CORPORA,
    METADATA_KEY,
    REQUIRED_CORPORA,
    TOKEN_COLUMNS,
    resid_column,
)
from sae_unlearn.errors import UserError


class CacheError(UserError):
    """An activation cache that cannot be used as asked; the fix is in the cache stage."""


def cache_metadata(path: str | Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise CacheError(
            f"{path} is not an sae-unlearn activation cache (no metadata); rerun the cache stage"
        )
    return json.loads(meta[METADATA_KEY])


def check_layer_cached(path: str | Path, layer: int, what: str = "layer") -> dict:
    """The cache's metadata, after checking it holds `layer` (`what` names the setting)."""
    meta = cache_metadata(path)
    if layer not in meta["layers"]:
        raise CacheError(
            f"{path} caches layers {meta['layers']}, not {what}={layer}; "
            f"add {layer} to cache.layers and rerun `sae-unlearn cache`"
        )
    return meta


def check_caches(paths: Sequence[Path], layer: int, what: str = "sae.layer") -> int:
    """The residual width shared by the caches at `paths`, after checking each holds `layer`."""
    d_models = set()
    for path in paths:
        if not path.exists():
            raise CacheError(f"{path} does not exist; run `sae-unlearn cache` first")
        d_models.add(int(check_layer_cached(path, layer, what)["d_model"]))
    if len(d_models) != 1:
        folders = sorted({str(path.parent) for path in paths})
        raise CacheError(f"the caches in {', '.join(folders)} disagree on d_model: {d_models}")
    return d_models.pop()


def corpus_cache_paths(cache_dir: str | Path) -> dict[str, Path]:
    """The cache file of each corpus in `cache_dir`, in CORPORA order: the required ones
    (which must exist) and each optional one that was cached."""
    paths = {}
    for corpus in CORPORA:
        path = Path(cache_dir) / f"{corpus}.parquet"
        if path.exists():
            paths[corpus] = path
        elif corpus in REQUIRED_CORPORA:
            raise CacheError(f"{path} does not exist; run `sae-unlearn cache` first")
    return paths


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
    check_layer_cached(path, layer)
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
        raise UserError(f"{path} holds no tokens for layer {layer}")
    out = torch.cat(parts)
    return out[:max_tokens] if max_tokens is not None else out


def read_layer_with_sequences(
    path: Path, layer: int, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-special activations of `layer` and the sequence id of each token."""
    sequence_ids = torch.from_numpy(read_tokens(path).column("sequence_id").to_numpy())
    acts, seqs = [], []
    batches = iter_activations(path, layer)
    for batch, rows in tqdm(batches, desc=f"read {path.name}", disable=not progress):
        acts.append(batch)
        seqs.append(sequence_ids[rows])
    if not acts or sum(len(a) for a in acts) == 0:
        raise CacheError(f"{path} holds no non-special tokens; rerun the cache stage")
    return torch.cat(acts), torch.cat(seqs)
