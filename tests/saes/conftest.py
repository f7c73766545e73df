"""Fixtures shared by the SAE tests: one thread, sparse residual-like data, a trained SAE."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from sae_unlearn.activations.cache import CacheConfig, cache_corpus
from sae_unlearn.saes.train import train_sae
from tests.saes.samples import FAST, D
from tests.tiny import TRAINING_TEXT, tiny_gemma3, tiny_tokenizer


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a busy 2-core machine OpenMP
    oversubscription makes them ~30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def sparse_data() -> torch.Tensor:
    """Sparse non-negative combinations of 32 random unit directions, offset and scaled
    like a residual stream (large mean, large norm) so normalisation matters."""
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(32, D, generator=g)
    directions /= directions.norm(dim=-1, keepdim=True)
    active = torch.rand(2048, 32, generator=g) < 3 / 32
    coefficients = torch.rand(2048, 32, generator=g) * 3 * active
    return (coefficients @ directions) * 100 + 40 * torch.randn(D, generator=g)


@pytest.fixture(scope="package")
def trained(sparse_data) -> SAE:
    return train_sae(sparse_data, FAST)


@pytest.fixture(scope="package")
def tiny_cache(tmp_path_factory) -> Path:
    """Two corpus caches of a tiny Gemma 3 at layer 1: 12 sequences of 32 tokens each, in
    row groups of 8 sequences (so 2 row groups a corpus)."""
    cache_dir = tmp_path_factory.mktemp("cache")
    tokenizer = tiny_tokenizer()
    model = tiny_gemma3(len(tokenizer))
    cfg = CacheConfig(layers=(1,), seq_len=32, batch_size=8, max_tokens=32 * 12)
    texts = TRAINING_TEXT * 8
    for corpus in ("forget", "retain"):
        cache_corpus(model, tokenizer, texts, corpus, cfg, cache_dir / corpus)
    return cache_dir
