"""The SAE against the cache it is scored on: cached layer and residual width."""

from __future__ import annotations

import pytest
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.selection.checks import check_cache_for_sae
from sae_unlearn.selection.scoring import corpus_statistics
from tests.selection.helpers import LAYER, D, planted_sae


def test_cache_sae_mismatches_are_named(cache_dir):
    narrow = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    path = cache_dir / "forget"
    with pytest.raises(ValueError, match=r"reads 16-dimensional .* 32-dimensional") as err:
        corpus_statistics(narrow, path, LAYER, progress=False)
    assert str(path) in str(err.value) and "train-sae" in str(err.value)
    with pytest.raises(ValueError, match=r"not sae.layer=5; add 5 to cache.layers"):
        corpus_statistics(planted_sae(cache_dir), path, 5, progress=False)


def test_check_cache_for_sae_returns_the_metadata(cache_dir):
    meta = check_cache_for_sae(cache_dir / "retain", planted_sae(cache_dir), LAYER)
    assert meta["layers"] == [0, LAYER] and meta["d_model"] == D
