"""Reading an activation cache back: its metadata, token columns and per-layer activations.

A corpus cache is a folder of shards (`layout`); every reader streams them through
`pyarrow.dataset` in the manifest's order, one row group at a time, so memory stays flat and
the rows come in sequence order whatever the storage dtype (vectors upcast to float32).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import torch
from tqdm.auto import tqdm

from sae_unlearn.activations.layout import (
    CacheError,
    corpus_cache_paths,
    read_manifest,
    shard_paths,
)
from sae_unlearn.activations.remote import stored_shards
from sae_unlearn.activations.schema import TOKEN_COLUMNS, decode_vectors, resid_column
from sae_unlearn.errors import UserError

__all__ = ["CacheError", "corpus_cache_paths"]


def cache_metadata(path: str | Path) -> dict:
    """The facts of the corpus cache at `path` (model, layers, d_model, dtype, shards...)."""
    return read_manifest(path)


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
        d_models.add(int(check_layer_cached(path, layer, what)["d_model"]))
    if len(d_models) != 1:
        folders = sorted({str(path.parent) for path in paths})
        raise CacheError(f"the caches in {', '.join(folders)} disagree on d_model: {d_models}")
    return d_models.pop()


def shard_dataset(path: str | Path) -> ds.FileSystemDataset:
    """The shards of the cache at `path` as one dataset, its fragments in the manifest's order:
    beside the manifest, or streamed from the object store it names (`remote`)."""
    manifest = read_manifest(path)
    if manifest.get("shards_url"):
        filesystem, paths = stored_shards(manifest, Path(path))
        return ds.dataset(paths, filesystem=filesystem, format="parquet")
    return ds.dataset([str(p) for p in shard_paths(path)], format="parquet")


def num_row_groups(path: str | Path) -> int:
    """Row groups over every shard (read from the footers alone): a progress bar's total."""
    return sum(fragment.num_row_groups for fragment in shard_dataset(path).get_fragments())


def row_group_fragments(path: str | Path) -> list[ds.ParquetFileFragment]:
    """Every row group of the cache at `path` as a fragment of its own, in sequence order
    (the shards in the manifest's order, each shard's row groups in file order); each reads
    only its row group, so a reader may take them in any order."""
    return [g for f in shard_dataset(path).get_fragments() for g in f.split_by_row_group()]


def row_groups(path: str | Path, columns: Sequence[str]) -> Iterator[pa.Table]:
    """`columns` of the cache at `path`, one row group at a time, in sequence order."""
    for group in row_group_fragments(path):
        yield group.to_table(columns=list(columns))


def non_special(table: pa.Table) -> torch.Tensor:
    """Which rows of a row group's table hold a token other than a special one (BOS, pad)."""
    return ~torch.from_numpy(table.column("is_special").to_numpy(zero_copy_only=False).copy())


def group_tokens(
    group: ds.ParquetFileFragment, layer: int, dtype: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One row group's non-special activations of `layer` (float32, `[n, d]`) and the
    sequence id of each: `dtype` is the cache's storage dtype (its manifest's)."""
    column = resid_column(layer)
    table = group.to_table(columns=[column, "sequence_id", "is_special"])
    acts = decode_vectors(table.column(column), table.num_rows, dtype)
    sequences = torch.from_numpy(table.column("sequence_id").to_numpy().copy())
    keep = non_special(table)
    return acts[keep], sequences[keep]


def read_tokens(path: str | Path) -> pa.Table:
    """The token columns only (no activation vectors), every shard in order."""
    tables = list(row_groups(path, TOKEN_COLUMNS))
    return pa.concat_tables(tables).combine_chunks()


def iter_activations(
    path: str | Path, layer: int, include_special: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stream `(activations [n, d], token_rows [n])` row group by row group.

    `token_rows` are the row indices into the whole cache (its shards in order), so callers
    can join results back to `read_tokens(path)`.
    """
    dtype = check_layer_cached(path, layer)["dtype"]
    column = resid_column(layer)
    offset = 0
    for table in row_groups(path, [column, "is_special"]):
        n = table.num_rows
        acts = decode_vectors(table.column(column), n, dtype)
        rows = torch.arange(offset, offset + n)
        if not include_special:
            keep = non_special(table)
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
    sequence_ids = torch.from_numpy(read_tokens(path).column("sequence_id").to_numpy().copy())
    acts, seqs = [], []
    batches = iter_activations(path, layer)
    for batch, rows in tqdm(batches, desc=f"read {Path(path).name}", disable=not progress):
        acts.append(batch)
        seqs.append(sequence_ids[rows])
    if not acts or sum(len(a) for a in acts) == 0:
        raise CacheError(f"{path} holds no non-special tokens; rerun the cache stage")
    return torch.cat(acts), torch.cat(seqs)
