"""The SAE against what it reads: cached layer, residual width, the SAE's own hook."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.selection.checks import (
    check_cache_for_sae,
    check_sae_width,
    warn_if_other_layer,
)
from sae_unlearn.selection.scoring import corpus_statistics
from tests.selection.helpers import LAYER, D, planted_sae


def test_cache_sae_mismatches_are_named(cache_dir):
    narrow = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    path = cache_dir / "forget.parquet"
    with pytest.raises(ValueError, match=r"reads 16-dimensional .* 32-dimensional") as err:
        corpus_statistics(narrow, path, LAYER, progress=False)
    assert str(path) in str(err.value) and "train-sae" in str(err.value)
    with pytest.raises(ValueError, match=r"not sae.layer=5; add 5 to cache.layers"):
        corpus_statistics(planted_sae(cache_dir), path, 5, progress=False)


def test_check_cache_for_sae_returns_the_metadata(cache_dir):
    meta = check_cache_for_sae(cache_dir / "retain.parquet", planted_sae(cache_dir), LAYER)
    assert meta["layers"] == [0, LAYER] and meta["d_model"] == D


def test_check_sae_width():
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    check_sae_width(sae, 16, found="unused", advice="unused")
    with pytest.raises(ValueError) as err:
        check_sae_width(sae, 32, found="x holds 32", advice="fix it")
    assert str(err.value) == "the SAE reads 16-dimensional activations but x holds 32; fix it"


def test_warn_if_other_layer():
    sae = SimpleNamespace(cfg=SimpleNamespace(metadata=SimpleNamespace(hook_name="blocks.7.x")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_other_layer(sae, 7)  # its own layer: silent
        warn_if_other_layer(SimpleNamespace(cfg=SimpleNamespace()), 3)  # no hook name: silent
    with pytest.warns(UserWarning, match=r"trained on blocks.7.x, but sae.layer=3") as record:
        warn_if_other_layer(sae, 3, stacklevel=1)
    assert record[0].filename == __file__  # stacklevel 1: the line that called it
