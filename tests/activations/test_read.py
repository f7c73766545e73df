"""Reading the cache: layer membership, width agreement, per-sequence reads."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sae_unlearn.activations.cache import CacheConfig, cache_corpus
from sae_unlearn.activations.read import (
    CacheError,
    check_caches,
    check_layer_cached,
    read_activations,
    read_layer_with_sequences,
)
from tests.activations.samples import TEXTS


def test_read_uncached_layer_is_refused(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(1,), seq_len=16, batch_size=4, max_tokens=64)
    out = tmp_path / "retain"
    cache_corpus(model, tokenizer, TEXTS, "retain", cfg, out, progress=False)
    with pytest.raises(
        ValueError, match="caches layers \\[1\\], not layer=0; add 0 to cache.layers"
    ):
        read_activations(out, 0)


@pytest.fixture
def two_caches(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(1,), seq_len=16, batch_size=4, max_tokens=64)
    paths = [tmp_path / corpus for corpus in ("forget", "retain")]
    for path in paths:
        cache_corpus(model, tokenizer, TEXTS, path.name, cfg, path, progress=False)
    return paths


def test_check_caches_returns_the_width_or_names_the_fix(two_caches, tmp_path):
    assert check_caches(two_caches, 1) == 32
    assert check_layer_cached(two_caches[0], 1)["corpus"] == "forget"
    with pytest.raises(CacheError, match=r"caches layers \[1\], not sae.layer=0; add 0 to"):
        check_caches(two_caches, 0)
    with pytest.raises(CacheError, match="nope does not exist; run `sae-unlearn cache`"):
        check_caches([*two_caches, tmp_path / "nope"], 1)


def test_read_layer_with_sequences_skips_special_tokens(two_caches):
    acts, seqs = read_layer_with_sequences(two_caches[0], 1, progress=False)
    table = pq.read_table(two_caches[0] / "shard-00000.parquet").to_pandas()
    plain = table[~table["is_special"]]
    assert seqs.tolist() == plain["sequence_id"].tolist()
    expected = torch.tensor(np.stack(plain["resid_1"].to_list()), dtype=torch.float32)
    assert torch.equal(acts, expected)
