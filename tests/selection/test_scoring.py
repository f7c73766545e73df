"""Scoring: streamed statistics against a dense computation, special tokens masked out,
and the contexts score_latents decodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sae_unlearn.activations import (
    CacheConfig,
    cache_corpus,
    read_activations,
    read_tokens,
    resid_column,
    shard_paths,
)
from sae_unlearn.selection.config import ScoreConfig, SelectConfig
from sae_unlearn.selection.ranking import rank_latents
from sae_unlearn.selection.scoring import ScoreResult, corpus_statistics, score_latents
from sae_unlearn.selection.stats import STAT_COLUMNS
from tests.selection.helpers import (
    D_SAE,
    FORGET_TEXTS,
    LAYER,
    SEQ_LEN,
    D,
    dense_statistics,
    non_special,
    planted_sae,
)


@pytest.mark.parametrize("kind", ["standard", "topk"])
@pytest.mark.parametrize("batch_size", [7, 4096])
def test_statistics_equal_dense_computation(cache_dir, kind, batch_size):
    sae = planted_sae(cache_dir, kind)
    path = cache_dir / "forget"
    stats = corpus_statistics(sae, path, LAYER, batch_size=batch_size, top_n=4, progress=False)
    ref = dense_statistics(sae, path, top_n=4)
    assert stats.n_tokens == int(ref["keep"].sum())
    torch.testing.assert_close(stats.freq, ref["freq"], rtol=0, atol=1e-12)
    torch.testing.assert_close(stats.mean, ref["mean"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.max.double(), ref["max"], rtol=1e-5, atol=1e-6)
    # The planted spread is real: frequent, rare and dead latents.
    assert ref["freq"].max() > 0.5 and 0 < ref["freq"][ref["freq"] > 0].min() < 0.1
    assert stats.freq[D_SAE - 1] == 0 and stats.max[D_SAE - 1] == 0
    for j in range(D_SAE):
        values = [v for v in stats.top_values[:, j].tolist() if v > 0]
        np.testing.assert_allclose(values, ref["top"][j], rtol=1e-5)
        pairs = zip(stats.top_values[:, j].tolist(), stats.top_rows[:, j].tolist(), strict=True)
        for value, row in pairs:
            if row < 0:
                assert value == 0
                continue
            assert ref["keep"][row], "a special token was kept as a context"
            assert ref["all"][row, j].item() == pytest.approx(value, rel=1e-5)


def rewrite_special_rows(src: Path, dst: Path, value: float) -> None:
    """A copy of a cache whose special tokens carry other (huge) activations."""
    shutil.copytree(src, dst)
    column = resid_column(LAYER)
    for shard in shard_paths(dst):
        parquet = pq.ParquetFile(src / shard.name)
        with pq.ParquetWriter(shard, parquet.schema_arrow) as writer:
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group)
                special = table.column("is_special").to_numpy(zero_copy_only=False)
                vectors = table.column(column).combine_chunks().flatten().to_numpy()
                vectors = vectors.reshape(-1, D).copy()
                vectors[special] = value
                flat = pa.array(vectors.reshape(-1).astype(np.float32))
                array = pa.FixedSizeListArray.from_arrays(flat, D)
                index = table.schema.get_field_index(column)
                writer.write_table(table.set_column(index, table.schema.field(column), array))


def test_special_tokens_do_not_change_statistics(cache_dir, tmp_path):
    sae = planted_sae(cache_dir)
    path = cache_dir / "retain"
    changed = tmp_path / "retain"
    rewrite_special_rows(path, changed, 50.0)
    assert (~non_special(path)).sum() > 0
    before = corpus_statistics(sae, path, LAYER, batch_size=5, progress=False)
    after = corpus_statistics(sae, changed, LAYER, batch_size=5, progress=False)
    for name in ("freq", "mean", "max", "top_values", "top_rows"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    # ...while the special tokens' SAE activations did change, so the mask mattered.
    with torch.no_grad():
        orig = sae.encode(read_activations(path, LAYER, include_special=True))
        new = sae.encode(read_activations(changed, LAYER, include_special=True))
    special = ~non_special(path)
    assert not torch.allclose(orig[special], new[special])
    assert new[special].max() > before.max.max()


def test_contexts_mark_the_firing_token(cache_dir, tiny_model):
    _, tokenizer = tiny_model
    sae = planted_sae(cache_dir)
    paths = {c: cache_dir / c for c in ("forget", "retain")}
    cfg = ScoreConfig(
        layer=LAYER,
        batch_size=9,
        top_contexts=3,
        context_latents=4,
        context_window=5,
        rankings=("forget_freq", "freq_ratio"),
        select=SelectConfig(retain_threshold=None),
    )
    result = score_latents(sae, paths, tokenizer, cfg, progress=False)
    assert list(result.latents.columns) == STAT_COLUMNS and len(result.latents) == D_SAE
    contexts = result.contexts
    by_forget = rank_latents(
        result.latents, SelectConfig(score="forget_freq", retain_threshold=None)
    )
    by_ratio = rank_latents(result.latents, SelectConfig(score="freq_ratio", retain_threshold=None))
    expected = set(by_forget["latent"][:4]) | set(by_ratio["latent"][:4])
    assert set(contexts["latent"]) == expected
    for latent in by_ratio["latent"][:4]:
        assert "freq_ratio" in contexts.loc[contexts["latent"] == latent, "ranked_by"].iloc[0]

    for corpus, path in paths.items():
        tokens = read_tokens(path).to_pandas()
        with torch.no_grad():
            f = sae.encode(read_activations(path, LAYER, include_special=True))
        rows = contexts[contexts["corpus"] == corpus]
        assert len(rows) > 0
        for rec in rows.itertuples():
            row = int(rec.sequence_id) * SEQ_LEN + int(rec.position)
            assert tokens.loc[row, "token_id"] == rec.token_id
            assert not tokens.loc[row, "is_special"]
            assert f[row, rec.latent].item() == pytest.approx(rec.activation, rel=1e-5)
            assert rec.token == tokenizer.decode([rec.token_id])
            # The window: up to 5 tokens either side in the same sequence, never special.
            seq = tokens[tokens["sequence_id"] == rec.sequence_id].set_index("position")
            left, right = [], []
            for pos in range(rec.position - 1, rec.position - 6, -1):
                if pos < 0 or seq.loc[pos, "is_special"]:
                    break
                left.insert(0, int(seq.loc[pos, "token_id"]))
            for pos in range(rec.position + 1, rec.position + 6):
                if pos not in seq.index or seq.loc[pos, "is_special"]:
                    break
                right.append(int(seq.loc[pos, "token_id"]))
            assert rec.left == tokenizer.decode(left)
            assert rec.left + rec.token + rec.right == tokenizer.decode(
                [*left, rec.token_id, *right]
            )
        # Ranks follow the activation within each latent.
        for _, group in rows.groupby("latent"):
            assert group["rank"].tolist() == list(range(1, len(group) + 1))
            assert group["activation"].is_monotonic_decreasing


def test_score_latents_needs_both_caches(cache_dir, tiny_model):
    _, tokenizer = tiny_model
    with pytest.raises(ValueError, match=r"missing \['retain'\]"):
        score_latents(
            planted_sae(cache_dir),
            {"forget": cache_dir / "forget"},
            tokenizer,
            ScoreConfig(layer=LAYER),
            progress=False,
        )


def test_summary_counts_dead_latents_and_contexts():
    latents = pd.DataFrame({"forget_freq": [0.0, 0.1, 0.0], "retain_freq": [0.0, 0.0, 0.2]})
    contexts = pd.DataFrame({"latent": [1, 1, 2]})
    result = ScoreResult(latents, contexts, None, {"forget": 10, "retain": 20})
    assert result.summary(12.34) == (
        "scored 3 latents on forget 10, retain 20 non-special tokens in 12.3s "
        "(1 never fire); contexts for 2 latents"
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_scoring_reads_a_half_precision_cache(cache_dir, tiny_model, tmp_path, dtype):
    """Statistics on a float16/bfloat16 cache are those of its values, upcast to float32."""
    model, tokenizer = tiny_model
    cfg = CacheConfig(layers=(LAYER,), seq_len=SEQ_LEN, batch_size=3, max_tokens=SEQ_LEN * 10)
    path = tmp_path / "forget"
    cache_corpus(model, tokenizer, FORGET_TEXTS, "forget", cfg, path, progress=False)
    half = tmp_path / dtype
    cfg = CacheConfig(**{**cfg.__dict__, "dtype": dtype})
    cache_corpus(model, tokenizer, FORGET_TEXTS, "forget", cfg, half, progress=False)
    acts = read_activations(half, LAYER)
    assert acts.dtype == torch.float32
    assert torch.equal(acts, read_activations(path, LAYER).to(getattr(torch, dtype)).float())
    sae = planted_sae(cache_dir)
    stats = corpus_statistics(sae, half, LAYER, batch_size=7, top_n=4, progress=False)
    ref = dense_statistics(sae, half, top_n=4)
    torch.testing.assert_close(stats.freq, ref["freq"], rtol=0, atol=1e-12)
    torch.testing.assert_close(stats.max.double(), ref["max"], rtol=1e-5, atol=1e-6)
