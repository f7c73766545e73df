"""The cache as a folder of shards: any sharding reads back the same rows in the same order,
reruns replace the folder, and float16/bfloat16 storage reads back as float32."""

import json

import pytest
import torch

from sae_unlearn.activations.cache import CacheConfig, cache_corpus
from sae_unlearn.activations.read import (
    iter_activations,
    num_row_groups,
    read_layer_with_sequences,
    read_tokens,
)
from tests.activations.samples import TEXTS


def cached(tiny_model, out, **cfg):
    model, tokenizer = tiny_model
    settings = {"layers": (0, 1), "seq_len": 16, "batch_size": 2, "max_tokens": 10_000, **cfg}
    cache_corpus(model, tokenizer, TEXTS, "forget", CacheConfig(**settings), out, progress=False)
    return out


def streamed(path, layer=1, include_special=True):
    parts = list(iter_activations(path, layer, include_special))
    return torch.cat([a for a, _ in parts]), torch.cat([r for _, r in parts]), len(parts)


def test_many_shards_read_back_as_one(tiny_model, tmp_path):
    one = cached(tiny_model, tmp_path / "one")
    many = cached(tiny_model, tmp_path / "many", shard_batches=1)
    manifest = json.loads((many / "manifest.json").read_text())
    names = [s["file"] for s in manifest["shards"]]
    assert names == [f"shard-{i:05d}.parquet" for i in range(len(names))] and len(names) > 2
    assert sorted(p.name for p in many.iterdir()) == sorted([*names, "manifest.json"])
    firsts = [s["first_sequence"] for s in manifest["shards"]]
    assert firsts == list(range(0, manifest["n_sequences"], 2))
    assert num_row_groups(one) == num_row_groups(many) == len(names)
    for include_special in (True, False):
        a, b = streamed(one, 1, include_special), streamed(many, 1, include_special)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert read_tokens(one).equals(read_tokens(many))
    acts_one, seqs_one = read_layer_with_sequences(one, 0, progress=False)
    acts_many, seqs_many = read_layer_with_sequences(many, 0, progress=False)
    assert torch.equal(acts_one, acts_many) and torch.equal(seqs_one, seqs_many)
    assert seqs_many.tolist() == sorted(seqs_many.tolist())


def test_a_rerun_replaces_the_folder(tiny_model, tmp_path):
    out = cached(tiny_model, tmp_path / "forget", shard_batches=1)
    cached(tiny_model, out, shard_batches=2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(s["file"] for s in manifest["shards"]), "manifest.json"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["forget"]  # no temporary folder left
    again = cached(tiny_model, tmp_path / "again", shard_batches=2)
    for name in [s["file"] for s in manifest["shards"]] + ["manifest.json"]:
        assert (out / name).read_bytes() == (again / name).read_bytes()  # deterministic


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_storage_reads_back_as_float32(tiny_model, tmp_path, dtype):
    full = cached(tiny_model, tmp_path / "full")
    half = cached(tiny_model, tmp_path / dtype, dtype=dtype)
    expected = streamed(full)[0].to(getattr(torch, dtype)).float()
    got = streamed(half)[0]
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert not torch.equal(got, streamed(full)[0])  # the rounding did happen
    assert json.loads((half / "manifest.json").read_text())["dtype"] == dtype
    # the vectors (2 layers x 32 values a token) take half the bytes; zstd shifts it a bit
    full_bytes = json.loads((full / "manifest.json").read_text())["bytes"]
    half_bytes = json.loads((half / "manifest.json").read_text())["bytes"]
    assert half_bytes < 0.7 * full_bytes
