"""Residual-stream activation cache: tokenising corpora (`tokenize`), the parquet columns
(`schema`), the folder of shards and its manifest (`layout`), writing a shard (`shards`) with
the local engine (`cache`) or Ray Data (`ray_engine`, imported only when used), and reading it
back (`read`)."""

from sae_unlearn.activations.cache import CacheConfig, CacheSummary, cache_corpus, summary_dict
from sae_unlearn.activations.layout import MANIFEST, read_manifest, shard_paths
from sae_unlearn.activations.read import (
    CacheError,
    cache_metadata,
    check_caches,
    check_layer_cached,
    corpus_cache_paths,
    iter_activations,
    read_activations,
    read_layer_with_sequences,
    read_tokens,
)
from sae_unlearn.activations.schema import (
    CORPORA,
    METADATA_KEY,
    REQUIRED_CORPORA,
    TOKEN_COLUMNS,
    resid_column,
)
from sae_unlearn.activations.tokenize import special_token_ids, tokenize_corpus

__all__ = [
    "CORPORA",
    "MANIFEST",
    "METADATA_KEY",
    "REQUIRED_CORPORA",
    "TOKEN_COLUMNS",
    "CacheConfig",
    "CacheError",
    "CacheSummary",
    "cache_corpus",
    "cache_metadata",
    "check_caches",
    "check_layer_cached",
    "corpus_cache_paths",
    "iter_activations",
    "read_activations",
    "read_layer_with_sequences",
    "read_manifest",
    "read_tokens",
    "resid_column",
    "shard_paths",
    "special_token_ids",
    "summary_dict",
    "tokenize_corpus",
]
