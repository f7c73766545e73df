"""The cache on disk: one folder per corpus of parquet shards with fixed names, and a manifest.

`{cache_dir}/{corpus}/shard-00000.parquet ...` hold consecutive runs of whole sequences, in
sequence order; `manifest.json` lists them (rows, sequence ranges, bytes, sha256) with the
cache's facts (model, layers, width, dtype). The folder is written whole and swapped into
place (`sae_unlearn.io.atomic_dir`), and the manifest is its last file, so a folder with a
manifest is complete and a reader never takes a half-written cache for one.

Caches of the single-file layout (`{corpus}.parquet`, before shards) are refused, not read:
DVC reruns the cache stage anyway when this code changes, so only a cache made outside DVC
can be old, and one reader per layout keeps every reader's row order the one to check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sae_unlearn.activations.schema import CORPORA, REQUIRED_CORPORA
from sae_unlearn.errors import UserError

MANIFEST = "manifest.json"
FORMAT = 2  # 1 was the single-file layout
SHARD_DIGITS = 5


class CacheError(UserError):
    """An activation cache that cannot be used as asked; the fix is in the cache stage."""


def shard_name(index: int) -> str:
    """Fixed names, so a rerun replaces shards instead of adding to them."""
    return f"shard-{index:0{SHARD_DIGITS}d}.parquet"


@dataclass(frozen=True)
class ShardInfo:
    file: str
    rows: int
    first_sequence: int
    n_sequences: int
    bytes: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_shard(path: Path, rows: int, first_sequence: int, n_sequences: int) -> ShardInfo:
    return ShardInfo(
        path.name, rows, first_sequence, n_sequences, path.stat().st_size, file_sha256(path)
    )


def plan_shards(n_sequences: int, shard_sequences: int) -> list[tuple[int, int]]:
    """`(first, end)` sequence ranges of each shard, in order; the last may be shorter."""
    return [
        (lo, min(lo + shard_sequences, n_sequences))
        for lo in range(0, n_sequences, shard_sequences)
    ]


def write_manifest(
    folder: Path, meta: dict, shards: Sequence[ShardInfo], shards_url: str | None = None
) -> dict:
    """The manifest of the shards in `folder` (or, with `shards_url`, in that store: see
    `remote`), written last (it marks the folder complete). No wall-clock field, so a rerun
    writes the same bytes."""
    ordered = sorted(shards, key=lambda s: s.first_sequence)
    manifest = {
        "format": FORMAT,
        **meta,
        **({"shards_url": shards_url} if shards_url else {}),
        "n_rows": sum(s.rows for s in ordered),
        "n_sequences": sum(s.n_sequences for s in ordered),
        "bytes": sum(s.bytes for s in ordered),
        "shards": [asdict(s) for s in ordered],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of the corpus cache folder `path`, refusing old and incomplete caches."""
    path = Path(path)
    if path.suffix == ".parquet" and path.is_file():
        raise CacheError(
            f"{path} is a single-file activation cache from before the sharded layout "
            f"({path.with_suffix('')}/shard-*.parquet + {MANIFEST}); rerun `sae-unlearn cache`"
        )
    if not path.exists():
        raise CacheError(f"{path} does not exist; run `sae-unlearn cache` first")
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise CacheError(
            f"{path} has no {MANIFEST}, so it is not a complete activation cache; "
            "rerun `sae-unlearn cache`"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise CacheError(
            f"{manifest_path} has format {manifest.get('format')}, not {FORMAT}; "
            "rerun `sae-unlearn cache`"
        )
    return manifest


def shard_paths(path: str | Path) -> list[Path]:
    """The shard files of the corpus cache at `path`, in sequence order, when they sit beside
    the manifest (`read.shard_dataset` reads either kind)."""
    manifest = read_manifest(path)
    if manifest.get("shards_url"):
        raise CacheError(f"{path}'s shards are in {manifest['shards_url']}, not on this disk")
    return [Path(path) / s["file"] for s in manifest["shards"]]


def corpus_cache_paths(cache_dir: str | Path) -> dict[str, Path]:
    """The cache folder of each corpus in `cache_dir`, in CORPORA order: the required ones
    (which must exist) and each optional one that was cached."""
    paths = {}
    for corpus in CORPORA:
        path = Path(cache_dir) / corpus
        old = Path(cache_dir) / f"{corpus}.parquet"
        if (path / MANIFEST).exists():
            paths[corpus] = path
        elif old.is_file():
            read_manifest(old)  # raises: the old layout, and the fix
        elif path.exists() or corpus in REQUIRED_CORPORA:
            read_manifest(path)  # raises: missing, or a folder without a manifest
    return paths
