"""Top contexts: which latents get them, and their highest activations decoded as text
(the firing token in its own column, with the tokens either side of it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations import read_tokens
from sae_unlearn.selection.config import ScoreConfig
from sae_unlearn.selection.ranking import rank_latents
from sae_unlearn.selection.stats import CorpusStatistics, stat_columns

CONTEXT_COLUMNS = [
    "latent",
    "ranked_by",
    "corpus",
    "rank",
    "activation",
    "sequence_id",
    "position",
    "token_id",
    "left",
    "token",
    "right",
]


def context_latents(
    stats: pd.DataFrame, cfg: ScoreConfig, windows: pd.DataFrame | None = None
) -> dict[int, list[str]]:
    """Latents whose contexts are written, each with the rankings that picked it."""
    picked: dict[int, list[str]] = {}
    if cfg.context_latents == 0:
        return picked
    for name in cfg.rankings:
        ranking = cfg.ranking_config(name)
        ranked = rank_latents(
            stats[stat_columns(stats)], ranking, windows=windows if ranking.needs_windows else None
        )
        ranked = ranked.head(cfg.context_latents)
        for latent in ranked["latent"].tolist():
            picked.setdefault(int(latent), []).append(name)
    return picked


def decode_context(
    tokenizer: PreTrainedTokenizerBase, left: list[int], token: int, right: list[int]
) -> tuple[str, str, str]:
    """Text left of, of, and right of the token, so that left + token + right reads right.

    Decoding the pieces separately would drop the spaces that SentencePiece and
    byte-level BPE tokens carry, so the pieces are cut out of the decoded prefixes.
    """
    before = tokenizer.decode(left)
    through = tokenizer.decode([*left, token])
    full = tokenizer.decode([*left, token, *right])
    if through.startswith(before) and full.startswith(through):
        return before, through[len(before) :], full[len(through) :]
    # A token that is part of a multi-byte character cannot be cut out of its prefix.
    return before, tokenizer.decode([token]), tokenizer.decode(right)


@dataclass
class TokenIndex:
    """The token columns of one cache file, to look up a row's neighbours."""

    sequence_id: np.ndarray
    position: np.ndarray
    token_id: np.ndarray
    is_special: np.ndarray

    @classmethod
    def read(cls, path: str | Path) -> TokenIndex:
        table = read_tokens(path)

        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        return cls(col("sequence_id"), col("position"), col("token_id"), col("is_special"))

    def window(self, row: int, width: int) -> tuple[list[int], list[int]]:
        """Token ids within `width` of `row`, in its sequence, not crossing special tokens
        (so a context never runs across a document boundary or into BOS)."""
        seq = self.sequence_id[row]
        left: list[int] = []
        for r in range(row - 1, max(row - width, 0) - 1, -1):
            if self.sequence_id[r] != seq or self.is_special[r]:
                break
            left.append(int(self.token_id[r]))
        right: list[int] = []
        for r in range(row + 1, min(row + width, len(self.token_id) - 1) + 1):
            if self.sequence_id[r] != seq or self.is_special[r]:
                break
            right.append(int(self.token_id[r]))
        return left[::-1], right


def top_contexts(
    corpora: Mapping[str, tuple[str | Path, CorpusStatistics]],
    latents: Mapping[int, Sequence[str]],
    tokenizer: PreTrainedTokenizerBase,
    window: int = 12,
) -> pd.DataFrame:
    """The kept top activations of `latents` in each corpus, decoded (CONTEXT_COLUMNS)."""
    records = []
    for corpus, (path, stats) in corpora.items():
        if not latents:
            break
        index = TokenIndex.read(path)
        for latent in sorted(latents):
            ranked_by = ",".join(latents[latent])
            values = stats.top_values[:, latent].tolist()
            rows = stats.top_rows[:, latent].tolist()
            for rank, (value, row) in enumerate(zip(values, rows, strict=True), start=1):
                if row < 0:
                    break
                left, right = index.window(row, window)
                token = int(index.token_id[row])
                text_left, text_token, text_right = decode_context(tokenizer, left, token, right)
                records.append(
                    {
                        "latent": latent,
                        "ranked_by": ranked_by,
                        "corpus": corpus,
                        "rank": rank,
                        "activation": float(value),
                        "sequence_id": int(index.sequence_id[row]),
                        "position": int(index.position[row]),
                        "token_id": token,
                        "left": text_left,
                        "token": text_token,
                        "right": text_right,
                    }
                )
    frame = pd.DataFrame.from_records(records, columns=CONTEXT_COLUMNS)
    return frame.astype(
        {
            "latent": "int64",
            "rank": "int64",
            "activation": "float64",
            "sequence_id": "int64",
            "position": "int64",
            "token_id": "int64",
        }
    )
