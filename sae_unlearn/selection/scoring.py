"""Scoring: stream each corpus's activation cache (forget, retain, and retain_near when
cached) through the SAE once, row group by row group, into per-latent statistics, window
maxima and the top contexts of the best latents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations import iter_activations, read_tokens
from sae_unlearn.activations.read import num_row_groups
from sae_unlearn.errors import UserError
from sae_unlearn.selection.checks import check_cache_for_sae
from sae_unlearn.selection.config import ScoreConfig
from sae_unlearn.selection.contexts import context_latents, top_contexts
from sae_unlearn.selection.encode import encode_dense, sae_device
from sae_unlearn.selection.stats import (
    CORPORA,
    REQUIRED_CORPORA,
    CorpusStatistics,
    LatentAccumulator,
    latent_table,
)
from sae_unlearn.selection.windows import WindowMaxima, window_table


@torch.no_grad()
def corpus_statistics(
    sae: nn.Module,
    path: str | Path,
    layer: int,
    corpus: str = "",
    batch_size: int = 4096,
    top_n: int = 10,
    progress: bool = True,
    window: int = 32,
) -> CorpusStatistics:
    """Stream one corpus cache through the SAE; special tokens are excluded throughout."""
    check_cache_for_sae(path, sae, layer)
    corpus = corpus or Path(path).name
    device = sae_device(sae)
    acc = LatentAccumulator(int(sae.cfg.d_sae), top_n, device)
    maxima = WindowMaxima(read_tokens(path), window)
    n_groups = num_row_groups(path)
    with tqdm(total=n_groups, desc=f"score {corpus}", unit="group", disable=not progress) as bar:
        for acts, rows in iter_activations(path, layer, include_special=False):
            for lo in range(0, len(acts), batch_size):
                f = encode_dense(sae, acts[lo : lo + batch_size])
                chunk_rows = rows[lo : lo + batch_size].to(device)
                acc.update(f, chunk_rows)
                maxima.update(f.float(), chunk_rows)
            bar.update(1)
    if acc.n == 0:
        raise UserError(
            f"{path} holds no non-special tokens; rerun `sae-unlearn cache` on a real corpus"
        )
    result = acc.result(corpus)
    result.windows, result.n_windows = maxima.result(), maxima.n_windows
    return result


@dataclass
class ScoreResult:
    latents: pd.DataFrame  # STAT_COLUMNS, one row per latent
    contexts: pd.DataFrame  # CONTEXT_COLUMNS
    windows: pd.DataFrame | None = None  # WINDOW_COLUMNS
    n_tokens: dict[str, int] = field(default_factory=dict)

    def summary(self, seconds: float) -> str:
        """One line for the log: latents scored, tokens, dead latents, latents with contexts."""
        table = self.latents
        dead = int(((table["forget_freq"] == 0) & (table["retain_freq"] == 0)).sum())
        tokens = ", ".join(f"{c} {n}" for c, n in self.n_tokens.items())
        return (
            f"scored {len(table)} latents on {tokens} non-special tokens in {seconds:.1f}s "
            f"({dead} never fire); contexts for {self.contexts['latent'].nunique()} latents"
        )


def score_latents(
    sae: nn.Module,
    cache_paths: Mapping[str, str | Path],
    tokenizer: PreTrainedTokenizerBase,
    cfg: ScoreConfig,
    progress: bool = True,
) -> ScoreResult:
    """Statistics of every latent on each cache (forget and retain, retain_near when
    given), and top contexts."""
    missing = [c for c in REQUIRED_CORPORA if c not in cache_paths]
    if missing:
        raise UserError(
            f"score_latents needs caches for {list(REQUIRED_CORPORA)}; missing {missing}"
        )
    unknown = [c for c in cache_paths if c not in CORPORA]
    if unknown:
        raise UserError(f"score_latents: unknown corpora {unknown}; use {list(CORPORA)}")
    corpora = [c for c in CORPORA if c in cache_paths]
    stats = {
        corpus: corpus_statistics(
            sae,
            cache_paths[corpus],
            cfg.layer,
            corpus,
            batch_size=cfg.batch_size,
            top_n=cfg.top_contexts,
            progress=progress,
            window=cfg.window,
        )
        for corpus in corpora
    }
    table = latent_table(*stats.values())
    windows = window_table(*stats.values())
    picked = context_latents(table, cfg, windows) if cfg.top_contexts else {}
    contexts = top_contexts(
        {c: (cache_paths[c], stats[c]) for c in corpora}, picked, tokenizer, cfg.context_window
    )
    return ScoreResult(table, contexts, windows, {c: s.n_tokens for c, s in stats.items()})
