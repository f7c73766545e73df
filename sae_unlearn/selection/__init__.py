"""Latent scoring and selection: which SAE latents carry the forget topic.

config: SelectConfig (select.*), ScoreConfig (score.*), the score names.
stats: per-latent firing statistics of a corpus, streamed; the latents table.
windows: per-latent maxima over question-sized windows; threshold calibration.
ranking: the scores and the selection rule (retain filter, rank, top k).
contexts: which latents get top contexts, and those contexts decoded.
scoring: the score stage's work, cache by cache through the SAE.
refusal: the refusal latent for the refusal-clamp mode.
share: tau of the token-share gate, from trigger shares of benign chunks (import it
  from its module: it uses the steering hook's encoder, which score and select do not).
checks, encode: the SAE against the cache it reads; dense SAE encoding.
files: the score and select stages' file names, reads and writes.
"""

from sae_unlearn.selection.checks import (
    check_cache_for_sae,
)
from sae_unlearn.selection.config import SCORES, ScoreConfig, SelectConfig
from sae_unlearn.selection.contexts import (
    CONTEXT_COLUMNS,
    context_latents,
    decode_context,
    top_contexts,
)
from sae_unlearn.selection.encode import encode_dense, sae_device
from sae_unlearn.selection.files import (
    CONTEXTS_FILE,
    LATENTS_FILE,
    SELECTED_FILE,
    WINDOWS_FILE,
    cache_paths,
    read_scores,
    write_scores,
)
from sae_unlearn.selection.ranking import compute_score, rank_latents, select_latents
from sae_unlearn.selection.refusal import (
    NEUTRAL_TEXTS,
    REFUSAL_TEXTS,
    find_refusal_latent,
    refusal_scores,
)
from sae_unlearn.selection.scoring import ScoreResult, corpus_statistics, score_latents
from sae_unlearn.selection.stats import (
    CORPORA,
    STAT_COLUMNS,
    CorpusStatistics,
    latent_table,
    validate_statistics,
)
from sae_unlearn.selection.windows import WINDOW_COLUMNS, window_statistics, window_table

__all__ = [
    "CONTEXTS_FILE",
    "CONTEXT_COLUMNS",
    "CORPORA",
    "LATENTS_FILE",
    "NEUTRAL_TEXTS",
    "REFUSAL_TEXTS",
    "SCORES",
    "SELECTED_FILE",
    "STAT_COLUMNS",
    "WINDOWS_FILE",
    "WINDOW_COLUMNS",
    "CorpusStatistics",
    "ScoreConfig",
    "ScoreResult",
    "SelectConfig",
    "cache_paths",
    "check_cache_for_sae",
    "compute_score",
    "context_latents",
    "corpus_statistics",
    "decode_context",
    "encode_dense",
    "find_refusal_latent",
    "latent_table",
    "rank_latents",
    "read_scores",
    "refusal_scores",
    "sae_device",
    "score_latents",
    "select_latents",
    "top_contexts",
    "validate_statistics",
    "window_statistics",
    "window_table",
    "write_scores",
]
