"""Latent scoring and selection: which SAE latents carry the forget topic.

Scoring streams the activation cache of each corpus through the SAE once, row group by
row group, and keeps per latent (special tokens excluded):

- `freq`: fraction of non-special tokens with activation > 0 (firing frequency),
- `mean`: mean activation over all non-special tokens (zeros included),
- `max`: maximum activation,

plus the N highest activations of every latent (a running top-N, so memory stays flat),
from which the text contexts of the best-ranked latents are decoded.

It also keeps, per corpus, every latent's maximum over each window of `window` tokens
(a span about the length of a question; windows never cross sequences), stored sparse.
Window maxima estimate how often a latent would touch a question-sized text, and they
calibrate per-latent thresholds: the activation a latent exceeds on at most a given
fraction of retain windows (`select.threshold_rate`), for the `gated_clamp` mode.

Selection (Farrell et al. 2024; SAEBench unlearning eval): drop latents whose retain
frequency exceeds a threshold, rank the rest by a score, take the top k.

`find_refusal_latent` finds the latent the refusal-clamp mode drives: the one most active
on refusal text relative to neutral text.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations import (
    cache_metadata,
    iter_activations,
    read_tokens,
    special_token_ids,
)
from sae_unlearn.models import capture_residuals, check_layer, hidden_size, run_to_layers

CORPORA = ("forget", "retain")
STAT_COLUMNS = [
    "latent",
    "forget_freq",
    "retain_freq",
    "forget_mean",
    "retain_mean",
    "forget_max",
    "retain_max",
]
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
# forget_freq: Farrell et al. / SAEBench, after the retain-frequency filter.
# freq_ratio:  forget_freq / (retain_freq + eps). forget_freq alone favours broad latents
#              (e.g. "scientific prose") that sit just under the retain threshold and so
#              fire on much retain text too; the ratio favours latents specific to the
#              forget topic, eps keeps latents that never fire on retain comparable, and
#              `min_forget_freq` stops it from preferring latents seen on a handful of
#              forget tokens, which a clamp would barely ever trigger.
# log_odds:    log-odds of firing on forget minus on retain, both frequencies smoothed by
#              eps. Ranks like freq_ratio for rare latents but does not let a latent that
#              fires on nearly every forget token saturate, and penalises both rare-on-forget
#              and common-on-retain symmetrically.
# forget_window_freq: fraction of forget windows where the latent exceeds its calibrated
#              threshold (0 without calibration): how much forget text it would flag.
SCORES = ("forget_freq", "freq_ratio", "log_odds", "forget_window_freq")
WINDOW_COLUMNS = ["corpus", "window", "latent", "value", "n_windows"]

# Refusals in the style of chat assistants (the paper's refusal latent fires on text like
# the first one), and neutral sentences of the same register and length: compliant
# assistant replies and plain statements, so the contrast is refusal, not assistant-speak.
REFUSAL_TEXTS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I cannot assist with that request.",
    "I can't help with that. Is there anything else I can do for you?",
    "Sorry, I can't provide instructions for that.",
    "I'm afraid I can't do that; it could cause serious harm.",
    "I cannot help with this request because it is dangerous.",
    "I apologize, but I won't be able to help with that.",
    "As an AI assistant, I must decline to answer that question.",
)
NEUTRAL_TEXTS = (
    "Sure, here is a simple recipe for banana bread.",
    "Of course! The capital of France is Paris.",
    "Happy to help. Water boils at 100 degrees Celsius at sea level.",
    "Here are three tips for getting better sleep at night.",
    "The train leaves the station at nine in the morning.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Yes, you can store fresh basil in a glass of water.",
    "The museum opens on Saturday and tickets cost ten dollars.",
)


# --- configs ------------------------------------------------------------------------------


def _check_score_name(name: str, what: str) -> None:
    if name not in SCORES:
        raise ValueError(f"{what}={name!r} is not a known score; use one of {list(SCORES)}")


@dataclass(frozen=True)
class SelectConfig:
    """The selection rule (the `select.*` params)."""

    top_k: int = 10
    score: str = "forget_freq"
    retain_threshold: float | None = 0.01  # null: no retain filter
    min_forget_freq: float = 0.0
    eps: float = 1e-4  # smoothing of freq_ratio and log_odds, in frequency units
    # Calibrate per-latent thresholds on the retain windows: each selected latent's
    # threshold is the activation its window maximum exceeds on at most this fraction of
    # retain windows. null: thresholds 0 (fire whenever active, the paper's condition).
    threshold_rate: float | None = None

    @property
    def needs_windows(self) -> bool:
        return self.threshold_rate is not None or self.score == "forget_window_freq"

    def __post_init__(self) -> None:
        _check_score_name(self.score, "select.score")
        if self.threshold_rate is not None and not 0.0 <= self.threshold_rate < 1.0:
            raise ValueError(
                f"select.threshold_rate={self.threshold_rate} must be in [0, 1) or null"
            )
        if self.top_k < 1:
            raise ValueError(f"select.top_k={self.top_k} must be at least 1")
        if self.retain_threshold is not None and not 0.0 <= self.retain_threshold <= 1.0:
            raise ValueError(
                f"select.retain_threshold={self.retain_threshold} must be in [0, 1] or null"
            )
        if not 0.0 <= self.min_forget_freq <= 1.0:
            raise ValueError(f"select.min_forget_freq={self.min_forget_freq} must be in [0, 1]")
        if not self.eps > 0:
            raise ValueError(f"select.eps={self.eps} must be positive")


@dataclass(frozen=True)
class ScoreConfig:
    """How latents are scored and which contexts are kept (the `score.*` params).

    Contexts are kept for the `context_latents` latents that the selection rule would
    pick under each score in `rankings`, with this config's threshold, minimum, eps and
    threshold rate; keep them equal to `select.*` so the selected latents are among those
    with contexts.
    """

    layer: int
    batch_size: int = 4096  # tokens per SAE encode
    top_contexts: int = 10  # N highest activations kept per latent and corpus
    context_latents: int = 50  # latents per ranking whose contexts are written
    context_window: int = 12  # tokens either side of the firing token
    window: int = 32  # tokens per window of the window maxima (about a question)
    rankings: tuple[str, ...] = ("forget_freq", "freq_ratio")
    retain_threshold: float | None = 0.01
    min_forget_freq: float = 0.0
    eps: float = 1e-4
    threshold_rate: float | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"score.batch_size={self.batch_size} must be at least 1")
        if self.window < 1:
            raise ValueError(f"score.window={self.window} must be at least 1")
        if self.top_contexts < 0 or self.context_latents < 0 or self.context_window < 0:
            raise ValueError(
                "score.top_contexts, score.context_latents and score.context_window "
                "must not be negative"
            )
        for name in self.rankings:
            _check_score_name(name, "score.rankings entry")
        # Reuses SelectConfig's checks of the shared fields.
        self.ranking_config(self.rankings[0] if self.rankings else "forget_freq")

    def ranking_config(self, score: str) -> SelectConfig:
        return SelectConfig(
            top_k=max(1, self.context_latents),
            score=score,
            retain_threshold=self.retain_threshold,
            min_forget_freq=self.min_forget_freq,
            eps=self.eps,
            threshold_rate=self.threshold_rate,
        )


# --- streaming statistics -----------------------------------------------------------------


@dataclass
class CorpusStatistics:
    """Per-latent statistics of one corpus; `top_rows` index into the cache file's rows."""

    corpus: str
    n_tokens: int
    freq: torch.Tensor  # [d_sae] float64
    mean: torch.Tensor  # [d_sae] float64
    max: torch.Tensor  # [d_sae] float32
    top_values: torch.Tensor  # [N, d_sae] descending; 0 where fewer than N tokens fired
    top_rows: torch.Tensor  # [N, d_sae] int64; -1 where empty
    windows: pd.DataFrame | None = None  # window, latent, value: nonzero window maxima
    n_windows: int = 0


class _WindowMaxima:
    """Each latent's maximum over every window of `width` tokens of one cache file, sparse.

    Windows are (sequence, position // width); a row group may split a window, so maxima
    are merged at the end. Only nonzero maxima are kept: a TopK or JumpReLU SAE leaves
    most latents at 0 over a window, which keeps this at a few entries per token.
    """

    def __init__(self, path: str | Path, width: int):
        tokens = read_tokens(path)
        seq = tokens.column("sequence_id").to_numpy().astype(np.int64)
        pos = tokens.column("position").to_numpy().astype(np.int64)
        keys = seq * (int(pos.max(initial=0)) // width + 1) + pos // width
        _, self.window_of_row = np.unique(keys, return_inverse=True)
        special = tokens.column("is_special").to_numpy(zero_copy_only=False)
        # Windows with at least one non-special token: the ones statistics can see.
        self.n_windows = int(len(np.unique(self.window_of_row[~special])))
        self.parts: list[pd.DataFrame] = []

    def update(self, f: torch.Tensor, rows: torch.Tensor) -> None:
        windows = torch.from_numpy(self.window_of_row[rows.cpu().numpy()])
        local, inverse = torch.unique(windows, return_inverse=True)
        maxima = torch.zeros(len(local), f.shape[1], dtype=f.dtype, device=f.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
            maxima.index_reduce_(0, inverse.to(f.device), f, "amax", include_self=True)
        w, latent = (maxima > 0).nonzero(as_tuple=True)
        self.parts.append(
            pd.DataFrame(
                {
                    "window": local[w.cpu()].numpy().astype(np.int32),
                    "latent": latent.cpu().numpy().astype(np.int32),
                    "value": maxima[w, latent].float().cpu().numpy(),
                }
            )
        )

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"window": [], "latent": [], "value": []})
        frame = pd.concat(self.parts, ignore_index=True)
        return frame.groupby(["window", "latent"], as_index=False, sort=True)["value"].max()


class _Accumulator:
    def __init__(self, d_sae: int, n_top: int, device: torch.device):
        self.n = 0
        self.fires = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.total = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.max = torch.full((d_sae,), -math.inf, device=device)
        # Initialised at 0, not -inf: only tokens where a latent fires are contexts.
        self.top_values = torch.zeros(n_top, d_sae, device=device)
        self.top_rows = torch.full((n_top, d_sae), -1, dtype=torch.int64, device=device)

    def update(self, f: torch.Tensor, rows: torch.Tensor) -> None:
        f = f.float()
        self.n += len(f)
        self.fires += (f > 0).sum(0)
        # A float32 sum per batch, accumulated in float64: a float64 copy of the batch
        # would double its memory for no meaningful gain.
        self.total += f.sum(0).double()
        batch_max = f.amax(0)
        self.max = torch.maximum(self.max, batch_max)
        n_top = len(self.top_values)
        if n_top == 0:
            return
        # Only latents whose batch maximum beats their current N-th best can change,
        # which after the first batches is a small fraction of them.
        cols = (batch_max > self.top_values[-1]).nonzero().squeeze(1)
        if len(cols) == 0:
            return
        old_rows = self.top_rows[:, cols]
        best = torch.cat([self.top_values[:, cols], f[:, cols]]).topk(n_top, dim=0)
        # Indices below n_top point into the old top list, the rest into this batch; mapped
        # without materialising a [batch, latents] int64 table of row ids.
        idx = best.indices
        from_old = old_rows.gather(0, idx.clamp(max=n_top - 1))
        from_batch = rows[(idx - n_top).clamp(min=0)]
        self.top_values[:, cols] = best.values
        self.top_rows[:, cols] = torch.where(idx < n_top, from_old, from_batch)

    def result(self, corpus: str) -> CorpusStatistics:
        n = self.n
        top_rows = torch.where(self.top_values > 0, self.top_rows, -1)
        return CorpusStatistics(
            corpus=corpus,
            n_tokens=n,
            freq=(self.fires.double() / n).cpu(),
            mean=(self.total / n).cpu(),
            max=self.max.cpu(),
            top_values=torch.where(top_rows >= 0, self.top_values, 0.0).cpu(),
            top_rows=top_rows.cpu(),
        )


def sae_device(sae: nn.Module) -> torch.device:
    return next(sae.parameters()).device


def encode_dense(sae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`sae.encode` as a dense tensor (sae-lens TopK SAEs may return a sparse one)."""
    param = next(sae.parameters())
    f = sae.encode(x.to(device=param.device, dtype=param.dtype))
    return f.to_dense() if f.is_sparse else f


def check_cache_for_sae(path: str | Path, sae: nn.Module, layer: int) -> dict:
    """The cache's metadata, after checking it holds `layer` at the SAE's input width."""
    meta = cache_metadata(path)
    if layer not in meta["layers"]:
        raise ValueError(
            f"{path} caches layers {meta['layers']}, not sae.layer={layer}; "
            f"add {layer} to cache.layers and rerun `sae-unlearn cache`"
        )
    d_in, d_model = int(sae.cfg.d_in), int(meta["d_model"])
    if d_in != d_model:
        raise ValueError(
            f"the SAE reads {d_in}-dimensional activations but {path} holds {d_model}-dimensional "
            f"ones (model {meta.get('model') or '?'}); use an SAE for this model and layer "
            "(rerun `sae-unlearn train-sae`, or point sae.source/sae.path at a matching SAE)"
        )
    hook = getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
    if hook and f".{layer}." not in hook:
        warnings.warn(
            f"the SAE was trained on {hook}, but sae.layer={layer}; its statistics on this "
            "layer are unlikely to mean anything (set sae.layer to the SAE's layer)",
            stacklevel=2,
        )
    return meta


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
    """Stream one cache file through the SAE; special tokens are excluded throughout."""
    check_cache_for_sae(path, sae, layer)
    corpus = corpus or Path(path).stem
    device = sae_device(sae)
    acc = _Accumulator(int(sae.cfg.d_sae), top_n, device)
    maxima = _WindowMaxima(path, window)
    n_groups = pq.ParquetFile(path).num_row_groups
    with tqdm(total=n_groups, desc=f"score {corpus}", unit="group", disable=not progress) as bar:
        for acts, rows in iter_activations(path, layer, include_special=False):
            for lo in range(0, len(acts), batch_size):
                f = encode_dense(sae, acts[lo : lo + batch_size])
                chunk_rows = rows[lo : lo + batch_size].to(device)
                acc.update(f, chunk_rows)
                maxima.update(f.float(), chunk_rows)
            bar.update(1)
    if acc.n == 0:
        raise ValueError(
            f"{path} holds no non-special tokens; rerun `sae-unlearn cache` on a real corpus"
        )
    result = acc.result(corpus)
    result.windows, result.n_windows = maxima.result(), maxima.n_windows
    return result


def latent_table(forget: CorpusStatistics, retain: CorpusStatistics) -> pd.DataFrame:
    """One row per latent with the STAT_COLUMNS."""
    d_sae = len(forget.freq)
    return pd.DataFrame(
        {
            "latent": np.arange(d_sae, dtype=np.int64),
            "forget_freq": forget.freq.numpy(),
            "retain_freq": retain.freq.numpy(),
            "forget_mean": forget.mean.numpy(),
            "retain_mean": retain.mean.numpy(),
            "forget_max": forget.max.numpy().astype(np.float64),
            "retain_max": retain.max.numpy().astype(np.float64),
        }
    )


def window_table(forget: CorpusStatistics, retain: CorpusStatistics) -> pd.DataFrame:
    """Both corpora's nonzero window maxima in one long table (WINDOW_COLUMNS)."""
    parts = []
    for stats in (forget, retain):
        frame = stats.windows if stats.windows is not None else pd.DataFrame()
        frame = frame.reindex(columns=["window", "latent", "value"]).copy()
        frame.insert(0, "corpus", stats.corpus)
        frame["n_windows"] = np.int64(stats.n_windows)
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True)
    return table.astype(
        {"window": "int32", "latent": "int32", "value": "float32", "n_windows": "int64"}
    )


# --- selection ----------------------------------------------------------------------------


def window_statistics(
    windows: pd.DataFrame,
    d_sae: int,
    threshold_rate: float | None,
    source: str = "the window maxima",
) -> pd.DataFrame:
    """Per latent: the calibrated `threshold` and the fraction of forget and retain windows
    whose maximum exceeds it (`forget_window_freq`, `retain_window_freq`).

    The threshold is the smallest activation that the latent's window maximum exceeds on
    at most `threshold_rate` of retain windows: the (m+1)-th largest retain window maximum
    with m = floor(rate * n_windows), or 0 when it exceeds 0 on no more than m windows.
    `threshold_rate=None` gives threshold 0 everywhere.
    """
    missing = [c for c in WINDOW_COLUMNS if c not in windows.columns]
    if missing:
        raise ValueError(
            f"{source} lacks columns {missing}; rerun `sae-unlearn score` to rewrite it"
        )
    counts = {}
    for corpus in CORPORA:
        n = windows.loc[windows["corpus"] == corpus, "n_windows"]
        if len(n) == 0 or int(n.iloc[0]) < 1:
            raise ValueError(f"{source} has no {corpus} windows; rerun `sae-unlearn score`")
        counts[corpus] = int(n.iloc[0])
    bad = windows["latent"][(windows["latent"] < 0) | (windows["latent"] >= d_sae)]
    if len(bad):
        raise ValueError(
            f"{source}: latents {bad.head(5).tolist()} out of range for {d_sae} latents; "
            "rerun `sae-unlearn score` with this SAE"
        )
    thresholds = np.zeros(d_sae, dtype=np.float64)
    retain = windows[windows["corpus"] == "retain"]
    if threshold_rate is not None:
        m = int(np.floor(threshold_rate * counts["retain"]))
        ranked = retain.sort_values(["latent", "value"], ascending=[True, False])
        nth = ranked.groupby("latent").nth(m)  # the (m+1)-th largest, where it exists
        thresholds[nth["latent"].to_numpy()] = nth["value"].to_numpy()
    out = pd.DataFrame({"latent": np.arange(d_sae, dtype=np.int64), "threshold": thresholds})
    for corpus in CORPORA:
        frame = windows[windows["corpus"] == corpus]
        above = frame["value"].to_numpy() > thresholds[frame["latent"].to_numpy()]
        hits = np.bincount(frame["latent"].to_numpy()[above], minlength=d_sae)
        out[f"{corpus}_window_freq"] = hits / counts[corpus]
    return out


def validate_statistics(stats: pd.DataFrame, source: str = "the latent statistics") -> None:
    """Fail clearly on a statistics table that `score` did not write (or an old one)."""
    missing = [c for c in STAT_COLUMNS if c not in stats.columns]
    if missing:
        raise ValueError(
            f"{source} lacks columns {missing} (has {list(stats.columns)}); "
            "rerun `sae-unlearn score` to rewrite it"
        )
    if len(stats) == 0:
        raise ValueError(f"{source} has no latents; rerun `sae-unlearn score`")
    latents = stats["latent"]
    if not pd.api.types.is_integer_dtype(latents):
        raise ValueError(f"{source}: column `latent` must hold integers, not {latents.dtype}")
    bad = latents[(latents < 0) | (latents >= len(stats))]
    if len(bad) or latents.duplicated().any():
        shown = bad.head(5).tolist() if len(bad) else latents[latents.duplicated()].head(5).tolist()
        raise ValueError(
            f"{source}: latents out of range or repeated (e.g. {shown}); expected each of "
            f"0..{len(stats) - 1} once; rerun `sae-unlearn score`"
        )
    values = stats[STAT_COLUMNS[1:]]
    if values.isna().any().any():
        raise ValueError(f"{source} has missing (NaN) statistics; rerun `sae-unlearn score`")
    freqs = stats[["forget_freq", "retain_freq"]]
    if ((freqs < 0) | (freqs > 1)).any().any():
        raise ValueError(f"{source}: frequencies must lie in [0, 1]; rerun `sae-unlearn score`")


def compute_score(stats: pd.DataFrame, name: str, eps: float = 1e-4) -> pd.Series:
    """The score `name` (see SCORES) of every latent; higher means more forget-specific.
    `forget_window_freq` needs the columns of `window_statistics` merged in."""
    _check_score_name(name, "score")
    if name == "forget_window_freq":
        if name not in stats.columns:
            raise ValueError("the forget_window_freq score needs the window statistics")
        return stats[name].astype(float)
    forget = stats["forget_freq"].astype(float)
    retain = stats["retain_freq"].astype(float)
    if name == "forget_freq":
        return forget
    if name == "freq_ratio":
        return forget / (retain + eps)

    def logit(p: pd.Series) -> pd.Series:
        p = (p + eps) / (1 + 2 * eps)
        return np.log(p) - np.log1p(-p)

    return logit(forget) - logit(retain)


def rank_latents(
    stats: pd.DataFrame,
    cfg: SelectConfig,
    source: str = "the latent statistics",
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every latent that passes the filters, best first, with `rank` (1-based), `score` and
    `threshold` (the calibrated gate threshold; 0 without calibration).

    A latent that never fires on the forget corpus (never exceeds its threshold there,
    when calibrated) is never kept: clamping it would do nothing there. Ties break by
    forget frequency, then by latent index, so the order is deterministic.
    """
    validate_statistics(stats, source)
    frame = stats[STAT_COLUMNS].copy()
    if windows is not None:
        frame = frame.merge(
            window_statistics(windows, len(frame), cfg.threshold_rate), on="latent", how="left"
        )
    elif cfg.needs_windows:
        raise ValueError(
            f"select.score={cfg.score!r} / select.threshold_rate={cfg.threshold_rate} need "
            "the window maxima (windows.parquet from `sae-unlearn score`)"
        )
    else:
        frame["threshold"] = 0.0
    frame["score"] = compute_score(frame, cfg.score, cfg.eps)
    keep = frame["forget_freq"] > 0
    if cfg.threshold_rate is not None:
        keep &= frame["forget_window_freq"] > 0
    keep &= frame["forget_freq"] >= cfg.min_forget_freq
    if cfg.retain_threshold is not None:
        keep &= frame["retain_freq"] <= cfg.retain_threshold
    frame = frame[keep].sort_values(
        ["score", "forget_freq", "latent"], ascending=[False, False, True], kind="mergesort"
    )
    frame.insert(0, "rank", np.arange(1, len(frame) + 1, dtype=np.int64))
    frame["score_name"] = cfg.score
    return frame.reset_index(drop=True)


def select_latents(
    stats: pd.DataFrame,
    cfg: SelectConfig,
    source: str = "the latent statistics",
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The top `cfg.top_k` latents: rank, latent, the statistics, threshold, score and
    score_name (and the window frequencies when `windows` is given)."""
    ranked = rank_latents(stats, cfg, source, windows)
    if len(ranked) < cfg.top_k:
        threshold = "no retain filter" if cfg.retain_threshold is None else cfg.retain_threshold
        raise ValueError(
            f"only {len(ranked)} latents in {source} fire on the forget corpus with "
            f"retain frequency <= {threshold} and forget frequency >= {cfg.min_forget_freq}, "
            f"fewer than select.top_k={cfg.top_k}; raise select.retain_threshold, lower "
            "select.min_forget_freq, or lower select.top_k"
        )
    return ranked.head(cfg.top_k).reset_index(drop=True)


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
            stats[STAT_COLUMNS], ranking, windows=windows if ranking.needs_windows else None
        )
        ranked = ranked.head(cfg.context_latents)
        for latent in ranked["latent"].tolist():
            picked.setdefault(int(latent), []).append(name)
    return picked


# --- contexts -----------------------------------------------------------------------------


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
class _TokenIndex:
    sequence_id: np.ndarray
    position: np.ndarray
    token_id: np.ndarray
    is_special: np.ndarray

    @classmethod
    def read(cls, path: str | Path) -> _TokenIndex:
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
        index = _TokenIndex.read(path)
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


@dataclass
class ScoreResult:
    latents: pd.DataFrame  # STAT_COLUMNS, one row per latent
    contexts: pd.DataFrame  # CONTEXT_COLUMNS
    windows: pd.DataFrame | None = None  # WINDOW_COLUMNS
    n_tokens: dict[str, int] = field(default_factory=dict)


def score_latents(
    sae: nn.Module,
    cache_paths: Mapping[str, str | Path],
    tokenizer: PreTrainedTokenizerBase,
    cfg: ScoreConfig,
    progress: bool = True,
) -> ScoreResult:
    """Statistics of every latent on the forget and retain caches, and top contexts."""
    missing = [c for c in CORPORA if c not in cache_paths]
    if missing:
        raise ValueError(f"score_latents needs caches for {list(CORPORA)}; missing {missing}")
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
        for corpus in CORPORA
    }
    table = latent_table(stats["forget"], stats["retain"])
    windows = window_table(stats["forget"], stats["retain"])
    picked = context_latents(table, cfg, windows) if cfg.top_contexts else {}
    contexts = top_contexts(
        {c: (cache_paths[c], stats[c]) for c in CORPORA}, picked, tokenizer, cfg.context_window
    )
    return ScoreResult(table, contexts, windows, {c: s.n_tokens for c, s in stats.items()})


# --- the refusal latent -------------------------------------------------------------------


@torch.no_grad()
def _mean_latents(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    texts: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean activation and firing frequency of every latent over the texts' non-special tokens."""
    special = torch.tensor(special_token_ids(tokenizer), dtype=torch.long)
    device = next(model.parameters()).device
    total = torch.zeros(int(sae.cfg.d_sae), dtype=torch.float64)
    fires = torch.zeros(int(sae.cfg.d_sae), dtype=torch.float64)
    n = 0
    with capture_residuals(model, [layer], stop_after_last=True) as captured:
        # One text at a time: no padding, so no pad tokens or shifted positions to undo.
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            acts = run_to_layers(
                model,
                captured,
                input_ids=ids.to(device),
                attention_mask=torch.ones_like(ids, device=device),
            )[layer][0]
            keep = ~torch.isin(ids[0], special)
            f = encode_dense(sae, acts[keep.to(acts.device)].float()).double().cpu()
            total += f.sum(0)
            fires += (f > 0).sum(0)
            n += len(f)
    if n == 0:
        raise ValueError("the texts hold no non-special tokens")
    return total / n, fires / n


def refusal_scores(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    refusal_texts: Sequence[str] = REFUSAL_TEXTS,
    neutral_texts: Sequence[str] = NEUTRAL_TEXTS,
) -> pd.DataFrame:
    """Per latent: mean activation and firing frequency on refusal and on neutral text,
    and `score` = refusal_mean - neutral_mean; best first (ties: lowest latent)."""
    if not refusal_texts or not neutral_texts:
        raise ValueError("refusal_scores needs at least one refusal and one neutral text")
    check_layer(model, layer, what="sae.layer")
    d_in, d_model = int(sae.cfg.d_in), hidden_size(model)
    if d_in != d_model:
        raise ValueError(
            f"the SAE reads {d_in}-dimensional activations but the model's hidden size is "
            f"{d_model}; use an SAE for this model and layer"
        )
    refusal_mean, refusal_freq = _mean_latents(model, tokenizer, sae, layer, refusal_texts)
    neutral_mean, neutral_freq = _mean_latents(model, tokenizer, sae, layer, neutral_texts)
    frame = pd.DataFrame(
        {
            "latent": np.arange(len(refusal_mean), dtype=np.int64),
            "refusal_mean": refusal_mean.numpy(),
            "neutral_mean": neutral_mean.numpy(),
            "refusal_freq": refusal_freq.numpy(),
            "neutral_freq": neutral_freq.numpy(),
            "score": (refusal_mean - neutral_mean).numpy(),
        }
    )
    return frame.sort_values(
        ["score", "latent"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)


def find_refusal_latent(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    refusal_texts: Sequence[str] = REFUSAL_TEXTS,
    neutral_texts: Sequence[str] = NEUTRAL_TEXTS,
) -> int:
    """The latent most active on refusal text relative to neutral text (`clamp.refusal_latent:
    auto`): the largest difference of mean activations, special tokens excluded."""
    table = refusal_scores(model, tokenizer, sae, layer, refusal_texts, neutral_texts)
    best = table.iloc[0]
    if not best["score"] > 0:
        raise ValueError(
            "no SAE latent is more active on the refusal texts than on the neutral ones; "
            "set clamp.refusal_latent to a latent index explicitly"
        )
    return int(best["latent"])
