"""Shards in an object store (`cache.shards_url`): S3, GCS, Azure or a shared disk, through
fsspec, while the manifests stay in the cache folder that DVC tracks.

A shard in the store is named by its sha256 (`{shards_url}/{corpus}/{sha256}.parquet`), not by
its index: the bucket outlives any one run, and DVC keeps old manifests (experiments, earlier
commits) that must keep pointing at the bytes they describe. A rerun that writes the same
bytes writes the same names (nothing duplicated), and a different cache never overwrites
another's shards. A shard is written locally first (to hash it), uploaded, then deleted, so a
node needs disk for one shard. The manifest is written last, locally, so an interrupted run
leaves at most unreferenced objects in the bucket, never a cache a reader takes for complete.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from sae_unlearn.activations.layout import CacheError, ShardInfo
from sae_unlearn.errors import UserError

_PROTOCOL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# fsspec's packages for the stores users name most; any other protocol fsspec knows works too.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}


def store_filesystem(url: str, what: str = "cache.shards_url") -> tuple[Any, str]:
    """`(filesystem, root path)` of `url`: a URL with a protocol (`s3://bucket/prefix`,
    `file:///mnt/shared/cache`) or an absolute path; refused with the fix otherwise."""
    import fsspec

    if not (_PROTOCOL.match(url) or Path(url).is_absolute()):
        raise UserError(
            f"{what}={url!r} is neither a URL (s3://bucket/prefix, gs://..., file:///...) "
            "nor an absolute path; shards inside the project go in cache.dir: set "
            f"{what}: null"
        )
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        package = _PACKAGES.get(protocol, f"the fsspec package for {protocol}://")
        raise UserError(
            f"{what}={url!r} needs {package}: pip install {package} "
            f'(s3fs comes with pip install "sae-unlearn[remote]")'
        ) from exc
    except ValueError as exc:  # fsspec: "Protocol not known"
        raise UserError(
            f"{what}={url!r}: {exc}; use s3://, gs://, az://, file:// or an absolute path"
        ) from exc


def corpus_store(shards_url: str, corpus: str) -> str:
    """Where one corpus's shards go: a folder per corpus under the store's URL."""
    return f"{shards_url.rstrip('/')}/{corpus}"


def check_store(shards_url: str) -> None:
    """Fail before the model forward when the store cannot be reached or written."""
    fs, root = store_filesystem(shards_url)
    try:
        fs.makedirs(root, exist_ok=True)
        probe = f"{root.rstrip('/')}/.sae-unlearn-write-check"
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except Exception as exc:  # credentials, a missing bucket, a read-only mount...
        raise UserError(
            f"cache.shards_url={shards_url!r} cannot be written ({type(exc).__name__}: "
            f"{exc}); check the bucket and your credentials, or set cache.shards_url: null"
        ) from exc


def publish_shard(local_file: Path, info: ShardInfo, store_url: str) -> ShardInfo:
    """Upload the written shard `local_file` to `store_url` under its sha256, delete the local
    copy, and return its manifest entry (the file name relative to `store_url`)."""
    fs, root = store_filesystem(store_url)
    name = f"{info.sha256}.parquet"
    fs.makedirs(root, exist_ok=True)
    fs.put_file(str(local_file), f"{root.rstrip('/')}/{name}")
    local_file.unlink()
    return dataclasses.replace(info, file=name)


def stored_shards(manifest: dict, manifest_folder: Path) -> tuple[Any, list[str]]:
    """`(filesystem, paths)` of the shards a remote manifest lists, after checking each is
    in the store with the size the manifest records (a missing or partial upload, a bucket
    cleaned by hand, credentials that cannot list it). One listing of the corpus's folder,
    not a request per shard (a 100M-token cache has hundreds)."""
    url = manifest["shards_url"]
    where = f"{manifest_folder}/manifest.json"
    fs, root = store_filesystem(url, what=f"shards_url in {where}")
    root = root.rstrip("/")
    try:
        listed = fs.ls(root, detail=True) if fs.exists(root) else []
    except Exception as exc:
        raise CacheError(
            f"{url} (named in {where}) cannot be listed ({type(exc).__name__}: {exc}); "
            "check your credentials for the bucket"
        ) from exc
    sizes = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry["size"] for entry in listed}
    for shard in manifest["shards"]:
        size = sizes.get(shard["file"])
        if size != shard["bytes"]:
            found = "is missing" if size is None else f"has {size} bytes, not {shard['bytes']}"
            raise CacheError(
                f"{url}/{shard['file']} (listed in {where}) {found}; rerun `sae-unlearn cache` "
                "to write it again"
            )
    return fs, [f"{root}/{shard['file']}" for shard in manifest["shards"]]
