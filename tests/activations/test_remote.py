"""Shards in an object store (`cache.shards_url`): the cache folder keeps only the manifests,
the store holds the shards under their sha256, readers stream them from there and read what
the local layout reads. Tested on fsspec's local `file://` store and on S3 itself (s3fs
against moto's S3 server), skipped where those packages are missing."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.activations.cache import CacheConfig, cache_corpus
from sae_unlearn.activations.layout import CacheError, shard_paths
from sae_unlearn.activations.read import iter_activations, read_activations, read_tokens
from sae_unlearn.activations.remote import check_store, store_filesystem
from sae_unlearn.errors import UserError
from tests.activations.samples import TEXTS

SETTINGS = {"layers": (0, 1), "seq_len": 16, "batch_size": 2, "max_tokens": 10_000}


def cached(tiny_model, out, **cfg):
    model, tokenizer = tiny_model
    config = CacheConfig(**{**SETTINGS, **cfg})
    return cache_corpus(model, tokenizer, TEXTS, "forget", config, out, progress=False)


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def same_reads(a, b):
    assert read_tokens(a).equals(read_tokens(b))
    for layer in (0, 1):
        got = list(iter_activations(a, layer, include_special=True))
        want = list(iter_activations(b, layer, include_special=True))
        assert len(got) == len(want) > 1  # row group by row group
        for (x, rows_x), (y, rows_y) in zip(got, want, strict=True):
            assert torch.equal(x, y) and torch.equal(rows_x, rows_y)


def test_a_store_holds_the_local_shards_under_their_hashes(tiny_model, tmp_path):
    local = tmp_path / "local"
    cached(tiny_model, local, shard_batches=1)
    store = tmp_path / "bucket"
    url = f"file://{store}/cache"
    summary = cached(tiny_model, tmp_path / "remote", shard_batches=1, shards_url=url)
    remote = tmp_path / "remote"
    assert [p.name for p in remote.iterdir()] == ["manifest.json"]  # what DVC tracks
    m, m_local = manifest(remote), manifest(local)
    assert m["shards_url"] == f"{url}/forget" and "shards_url" not in m_local
    assert [s["sha256"] for s in m["shards"]] == [s["sha256"] for s in m_local["shards"]]
    assert summary.bytes == m_local["bytes"] and len(m["shards"]) > 2
    stored = {p.name: p.read_bytes() for p in (store / "cache" / "forget").iterdir()}
    assert stored == {
        f"{s['sha256']}.parquet": (local / s["file"]).read_bytes() for s in m_local["shards"]
    }
    same_reads(remote, local)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(CacheError, match="not on this disk"):
        shard_paths(remote)


def test_reruns_and_other_caches_never_overwrite_a_manifest_s_shards(tiny_model, tmp_path):
    url = f"file://{tmp_path}/bucket"
    first = tmp_path / "first"
    cached(tiny_model, first, shards_url=url)
    before = manifest(first)
    cached(tiny_model, first, shards_url=url)  # same bytes, same names: nothing added
    assert manifest(first) == before
    cached(tiny_model, tmp_path / "other", shards_url=url, dtype="float16")
    objects = sorted(p.name for p in (tmp_path / "bucket" / "forget").iterdir())
    assert len(objects) == len(before["shards"]) + len(manifest(tmp_path / "other")["shards"])
    read_tokens(first)  # the first manifest still reads: its shards were not replaced


def test_a_missing_or_changed_shard_is_named(tiny_model, tmp_path):
    url = f"file://{tmp_path}/bucket"
    out = tmp_path / "cache"
    cached(tiny_model, out, shard_batches=1, shards_url=url)
    shards = manifest(out)["shards"]
    stored = tmp_path / "bucket" / "forget"
    (stored / shards[1]["file"]).write_bytes(b"truncated")
    with pytest.raises(CacheError, match=f"{shards[1]['file']}.*has 9 bytes.*rerun"):
        read_activations(out, 1)
    (stored / shards[1]["file"]).unlink()
    with pytest.raises(CacheError, match=f"{shards[1]['file']}.*is missing.*rerun"):
        read_tokens(out)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("relative/folder", "neither a URL.*absolute path.*cache.shards_url: null"),
        ("nosuchproto://bucket/x", "nosuchproto.*use s3://"),
        ("gs://bucket/x", "needs gcsfs: pip install gcsfs"),
    ],
)
def test_bad_store_urls_are_refused_with_the_fix(url, message):
    if url.startswith("gs://"):
        try:
            import gcsfs  # noqa: F401

            pytest.skip("gcsfs is installed here")
        except ImportError:
            pass
    with pytest.raises(UserError, match=message):
        store_filesystem(url)


def test_an_unwritable_store_fails_before_the_model_runs(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")  # unwritable under it, even for root
    with pytest.raises(UserError, match="a_file/cache.*cannot be written.*credentials"):
        check_store(f"file://{tmp_path}/a_file/cache")


def test_the_stage_keeps_manifests_in_dir_and_shards_in_the_store(
    tiny_model_dir, tmp_path, monkeypatch
):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    (tmp_path / "prepared" / "corpora").mkdir(parents=True)
    for role in ("forget", "retain"):
        pd.DataFrame({"text": TEXTS}).to_parquet(f"prepared/corpora/{role}_corpus.parquet")
    cache = {"layers": [1], "seq_len": 16, "max_tokens": 10_000, "dir": "cache"}
    params = {"model": {"dir": str(tiny_model_dir)}, "data": {"dir": "prepared"}, "cache": cache}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "--shards-url", f"{tmp_path}/bucket"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for corpus in ("forget", "retain"):
        assert [p.name for p in (tmp_path / "cache" / corpus).iterdir()] == ["manifest.json"]
        assert any((tmp_path / "bucket" / corpus).iterdir())
    remote = read_activations(tmp_path / "cache" / "forget", 1)
    result = runner.invoke(app, ["cache", "--shards-url", "s3:/typo"])
    assert result.exit_code == 2 and "neither a URL" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["cache"])  # shards_url null: shards back beside the manifest
    assert result.exit_code == 0, result.output
    assert torch.equal(read_activations(tmp_path / "cache" / "forget", 1), remote)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 API (moto's server on localhost), reached the way a user reaches MinIO or
    another endpoint: fsspec's FSSPEC_S3_ENDPOINT_URL and the usual AWS variables."""
    pytest.importorskip("s3fs")
    server = pytest.importorskip("moto.server")
    port = free_port()
    moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    import fsspec.config
    import s3fs

    fsspec.config.set_conf_env(fsspec.config.conf)  # read the variable just set
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("activations")
    yield "s3://activations/cache"
    fsspec.config.conf.pop("s3", None)
    s3fs.S3FileSystem.clear_instance_cache()
    moto.stop()


def test_shards_in_s3_read_back_as_the_local_ones(tiny_model, tmp_path, s3_bucket):
    local = tmp_path / "local"
    cached(tiny_model, local, shard_batches=1)
    remote = tmp_path / "remote"
    check_store(s3_bucket)
    cached(tiny_model, remote, shard_batches=1, shards_url=s3_bucket)
    assert [p.name for p in remote.iterdir()] == ["manifest.json"]
    same_reads(remote, local)
    fs, root = store_filesystem(s3_bucket)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{root}/forget"))
    assert names == sorted(f"{s['sha256']}.parquet" for s in manifest(local)["shards"])
