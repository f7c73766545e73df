"""Caching: the parquet cache matches the model's hidden states and is written atomically."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import sae_unlearn.activations.shards as activations_shards
from sae_unlearn.activations.cache import CacheConfig, cache_corpus, summary_dict
from sae_unlearn.activations.layout import file_sha256
from sae_unlearn.activations.read import (
    cache_metadata,
    iter_activations,
    read_activations,
    read_tokens,
)
from sae_unlearn.activations.tokenize import tokenize_corpus
from tests.activations.samples import TEXTS


def test_cache_round_trip_matches_hidden_states(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(0, 1), seq_len=16, batch_size=3, max_tokens=10_000)
    out = tmp_path / "forget"
    summary = cache_corpus(model, tokenizer, TEXTS, "forget", cfg, out, progress=False)
    seqs = tokenize_corpus(TEXTS, tokenizer, 16, 10_000)
    assert summary.n_tokens == seqs.numel() and summary.n_sequences == len(seqs)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-00000.parquet"]
    parquet = pq.ParquetFile(out / "shard-00000.parquet")
    assert parquet.num_row_groups == -(-len(seqs) // 3)  # one row group per batch
    meta = cache_metadata(out)
    assert meta["layers"] == [0, 1] and meta["d_model"] == 32 and meta["corpus"] == "forget"
    assert meta["dtype"] == "float32" and meta["n_rows"] == seqs.numel()
    assert meta["shards"][0]["sha256"] == file_sha256(out / "shard-00000.parquet")

    tokens = read_tokens(out).to_pandas()
    assert tokens["token_id"].tolist() == seqs.reshape(-1).tolist()
    assert tokens["is_special"].sum() == int(
        (seqs == tokenizer.bos_token_id).sum() + (seqs == tokenizer.eos_token_id).sum()
    )
    with torch.no_grad():
        hidden = model(input_ids=seqs, output_hidden_states=True).hidden_states
    everything = read_activations(out, 0, include_special=True)
    torch.testing.assert_close(everything, hidden[1].reshape(-1, 32), rtol=1e-5, atol=1e-5)
    plain = read_activations(out, 0)
    keep = ~torch.from_numpy(tokens["is_special"].to_numpy().copy())
    torch.testing.assert_close(plain, everything[keep])

    rows = torch.cat([r for _, r in iter_activations(out, 1)])
    assert np.array_equal(rows.numpy(), np.flatnonzero(keep.numpy()))


def test_interrupted_cache_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(0,), seq_len=16, batch_size=1, max_tokens=10_000)
    out = tmp_path / "forget"
    calls = {"n": 0}
    real = activations_shards.run_to_layers

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(activations_shards, "run_to_layers", flaky)
    with pytest.raises(KeyboardInterrupt):
        cache_corpus(model, tokenizer, TEXTS, "forget", cfg, out, progress=False)
    assert list(tmp_path.iterdir()) == []
    # A rerun that fails leaves the complete cache of the run before it as it was.
    cfg_one_batch_shards = CacheConfig(layers=(0,), seq_len=16, batch_size=1, shard_batches=1)
    cache_corpus(model, tokenizer, TEXTS, "forget", cfg_one_batch_shards, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        cache_corpus(model, tokenizer, TEXTS, "forget", cfg, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["forget"]


def test_cache_config_validation():
    with pytest.raises(ValueError, match="cache.layers is empty"):
        CacheConfig(layers=())
    with pytest.raises(ValueError, match="cache.max_tokens=8 is below cache.seq_len=16"):
        CacheConfig(layers=(0,), seq_len=16, max_tokens=8)
    with pytest.raises(ValueError, match="cache.dtype='float8' is not a cache dtype; use one"):
        CacheConfig(layers=(0,), dtype="float8")
    with pytest.raises(ValueError, match="cache.shard_batches=0 must be at least 1"):
        CacheConfig(layers=(0,), shard_batches=0)


def test_summary_dict_adds_layers_and_total(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(1,), seq_len=16, batch_size=4, max_tokens=64)
    summaries = [
        cache_corpus(model, tokenizer, TEXTS, c, cfg, tmp_path / c, progress=False)
        for c in ("forget", "retain")
    ]
    summary = summary_dict(summaries, cfg.layers)
    assert list(summary) == ["forget", "retain", "layers", "total_tokens"]
    assert summary["layers"] == [1] and summary["total_tokens"] == 2 * 64
    assert summary["forget"]["n_tokens"] == 64 and summary["forget"]["n_sequences"] == 4
