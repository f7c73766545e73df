import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sae_unlearn.activations import (
    CacheConfig,
    cache_corpus,
    cache_metadata,
    iter_activations,
    read_activations,
    read_tokens,
    tokenize_corpus,
)

TEXTS = [
    "Viruses replicate inside host cells and bacteria divide by binary fission. " * 3,
    "Paris is the capital of France and the Nile is the longest river in Africa. " * 3,
    "A compiler translates source code; a sorting algorithm orders a list. " * 3,
]


def test_tokenize_corpus_packs_with_bos_and_eos(tiny_model):
    _, tokenizer = tiny_model
    seqs = tokenize_corpus(TEXTS, tokenizer, seq_len=16, max_tokens=10_000)
    assert seqs.shape[1] == 16
    assert (seqs[:, 0] == tokenizer.bos_token_id).all()
    assert (seqs == tokenizer.eos_token_id).sum() >= 1
    first = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"][:15]
    assert seqs[0, 1:].tolist() == first
    capped = tokenize_corpus(TEXTS, tokenizer, seq_len=16, max_tokens=40)
    assert capped.shape == (2, 16)


def test_tokenize_corpus_too_short(tiny_model):
    _, tokenizer = tiny_model
    with pytest.raises(ValueError, match="fewer than one sequence"):
        tokenize_corpus(["hi"], tokenizer, seq_len=64, max_tokens=1000)


def test_cache_round_trip_matches_hidden_states(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(0, 1), seq_len=16, batch_size=3, max_tokens=10_000)
    out = tmp_path / "forget.parquet"
    summary = cache_corpus(model, tokenizer, TEXTS, "forget", cfg, out, progress=False)
    seqs = tokenize_corpus(TEXTS, tokenizer, 16, 10_000)
    assert summary.n_tokens == seqs.numel() and summary.n_sequences == len(seqs)
    parquet = pq.ParquetFile(out)
    assert parquet.num_row_groups == -(-len(seqs) // 3)  # one row group per batch
    meta = cache_metadata(out)
    assert meta["layers"] == [0, 1] and meta["d_model"] == 32 and meta["corpus"] == "forget"

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


def test_read_uncached_layer_is_refused(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(1,), seq_len=16, batch_size=4, max_tokens=64)
    out = tmp_path / "retain.parquet"
    cache_corpus(model, tokenizer, TEXTS, "retain", cfg, out, progress=False)
    with pytest.raises(ValueError, match="caches layers \\[1\\], not layer 0"):
        read_activations(out, 0)


def test_interrupted_cache_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(0,), seq_len=16, batch_size=1, max_tokens=10_000)
    out = tmp_path / "forget.parquet"
    import sae_unlearn.activations as activations

    calls = {"n": 0}
    real = activations.run_to_layers

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(activations, "run_to_layers", flaky)
    with pytest.raises(KeyboardInterrupt):
        cache_corpus(model, tokenizer, TEXTS, "forget", cfg, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cache_config_validation():
    with pytest.raises(ValueError, match="cache.layers is empty"):
        CacheConfig(layers=())
    with pytest.raises(ValueError, match="cache.max_tokens=8 is below cache.seq_len=16"):
        CacheConfig(layers=(0,), seq_len=16, max_tokens=8)
