from __future__ import annotations

from pathlib import Path

import pytest

from sae_unlearn.activations import CacheConfig, cache_corpus
from tests.selection.helpers import FORGET_TEXTS, LAYER, RETAIN_TEXTS, SEQ_LEN


@pytest.fixture(scope="package")
def cache_dir(tiny_model, tmp_path_factory) -> Path:
    """Forget and retain caches of the tiny model at layers 0 and LAYER."""
    model, tokenizer = tiny_model
    out = tmp_path_factory.mktemp("selection_cache")
    # batch_size 3 gives several row groups, so the statistics are really streamed.
    cfg = CacheConfig(layers=(0, LAYER), seq_len=SEQ_LEN, batch_size=3, max_tokens=SEQ_LEN * 10)
    for corpus, texts in (("forget", FORGET_TEXTS), ("retain", RETAIN_TEXTS)):
        cache_corpus(model, tokenizer, texts, corpus, cfg, out / corpus, progress=False)
    return out
