"""The selection rule (`SelectConfig`, the `select.*` params) and the scoring settings
(`ScoreConfig`, the `score.*` params), with the names of the scores latents rank by."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sae_unlearn.choices import RANKING_SCORES
from sae_unlearn.errors import UserError

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
# crisp:       CRISP (Ashuach et al. 2025): forget minus benign activation count, benign
#              being in-domain text without hazards (here retain_near, biology without
#              pathogens, not general text); counts per token (frequencies), since the
#              corpora differ in length. Pair with `min_near_ratio` (CRISP: 3).
SCORES = RANKING_SCORES
# Scores that contrast forget with the retain_near corpus, so need its statistics.
NEAR_SCORES = ("crisp",)
# The SelectConfig fields that make the rule whatever the score and k: what score shares.
RULE_FIELDS = ("retain_threshold", "min_forget_freq", "min_near_ratio", "eps", "threshold_rate")


def check_score_name(name: str, what: str) -> None:
    """Fail when `name` is not one of SCORES; `what` names the setting in the message."""
    if name not in SCORES:
        raise UserError(f"{what}={name!r} is not a known score; use one of {list(SCORES)}")


@dataclass(frozen=True)
class SelectConfig:
    """The selection rule (the `select.*` params)."""

    top_k: int = 10
    score: str = "forget_freq"
    retain_threshold: float | None = 0.01  # null: no retain filter
    min_forget_freq: float = 0.0
    # CRISP's filter: keep latents firing on at least this many times more of the forget
    # corpus than of the retain_near corpus (forget_freq >= ratio * retain_near_freq).
    # null: no such filter. Needs the retain_near statistics.
    min_near_ratio: float | None = None
    eps: float = 1e-4  # smoothing of freq_ratio and log_odds, in frequency units
    # Calibrate per-latent thresholds on the retain windows: each selected latent's
    # threshold is the activation its window maximum exceeds on at most this fraction of
    # retain windows. null: thresholds 0 (fire whenever active, the paper's condition).
    threshold_rate: float | None = None

    @property
    def needs_windows(self) -> bool:
        return self.threshold_rate is not None or self.score == "forget_window_freq"

    @property
    def needs_near(self) -> bool:
        return self.score in NEAR_SCORES or self.min_near_ratio is not None

    def __post_init__(self) -> None:
        check_score_name(self.score, "select.score")
        if self.threshold_rate is not None and not 0.0 <= self.threshold_rate < 1.0:
            raise UserError(
                f"select.threshold_rate={self.threshold_rate} must be in [0, 1) or null"
            )
        if self.top_k < 1:
            raise UserError(f"select.top_k={self.top_k} must be at least 1")
        if self.retain_threshold is not None and not 0.0 <= self.retain_threshold <= 1.0:
            raise UserError(
                f"select.retain_threshold={self.retain_threshold} must be in [0, 1] or null"
            )
        if not 0.0 <= self.min_forget_freq <= 1.0:
            raise UserError(f"select.min_forget_freq={self.min_forget_freq} must be in [0, 1]")
        if self.min_near_ratio is not None and not self.min_near_ratio > 0:
            raise UserError(f"select.min_near_ratio={self.min_near_ratio} must be positive or null")
        if not self.eps > 0:
            raise UserError(f"select.eps={self.eps} must be positive")


@dataclass(frozen=True)
class ScoreConfig:
    """How latents are scored and which contexts are kept (the `score.*` params).

    Contexts are kept for the `context_latents` latents that `select`'s rule would pick
    under each score in `rankings`; taking the rule (filters, eps, threshold rate) from
    `select` itself keeps the selected latents among those with contexts.
    """

    layer: int
    batch_size: int = 4096  # tokens per SAE encode
    top_contexts: int = 10  # N highest activations kept per latent and corpus
    context_latents: int = 50  # latents per ranking whose contexts are written
    context_window: int = 12  # tokens either side of the firing token
    window: int = 32  # tokens per window of the window maxima (about a question)
    rankings: tuple[str, ...] = ("forget_freq", "freq_ratio")
    # Only its filters, eps and threshold rate matter here: each ranking sets score and top_k.
    select: SelectConfig = field(default_factory=SelectConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"score.batch_size={self.batch_size} must be at least 1")
        if self.window < 1:
            raise UserError(f"score.window={self.window} must be at least 1")
        if self.top_contexts < 0 or self.context_latents < 0 or self.context_window < 0:
            raise UserError(
                "score.top_contexts, score.context_latents and score.context_window "
                "must not be negative"
            )
        for name in self.rankings:
            check_score_name(name, "score.rankings entry")

    def ranking_config(self, score: str) -> SelectConfig:
        """`select`'s rule ranking by `score`, deep enough for `context_latents` latents."""
        return replace(self.select, top_k=max(1, self.context_latents), score=score)
