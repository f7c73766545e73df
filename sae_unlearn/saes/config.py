"""SAE settings: where an SAE comes from (`sae.*`) and how one is trained (`sae.train`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sae_unlearn.choices import (
    SAE_ARCHITECTURES,
    SAE_NORMALIZATIONS,
    SAE_SOURCES,
    SAE_TOPK_ARCHITECTURES,
)
from sae_unlearn.errors import UserError

SOURCES = SAE_SOURCES
ARCHITECTURES = SAE_ARCHITECTURES
NORMALIZATIONS = SAE_NORMALIZATIONS


@dataclass(frozen=True)
class SAESourceConfig:
    """Where the SAE comes from: trained here, a sae-lens hub release, or a local directory."""

    source: str = "train"
    release: str | None = None  # source: pretrained, e.g. gemma-scope-2b-pt-res-canonical
    sae_id: str | None = None  # source: pretrained, e.g. layer_7/width_16k/canonical
    path: str | None = None  # source: path, a sae-lens directory

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"sae.source={self.source!r} is not one of {list(SOURCES)}")
        if self.source == "pretrained" and not (self.release and self.sae_id):
            raise UserError("sae.source=pretrained needs both sae.release and sae.sae_id")
        if self.source == "path" and not self.path:
            raise UserError("sae.source=path needs sae.path (a sae-lens SAE directory)")

    @property
    def origin(self) -> str:
        """Where the SAE comes from, as error messages and warnings name it."""
        if self.source == "pretrained":
            return f"release {self.release} / {self.sae_id}"
        return self.path if self.source == "path" else "training"


@dataclass(frozen=True)
class SAETrainConfig:
    """How `train_sae` trains an SAE on cached activations (the `sae.train` params)."""

    architecture: str = "topk"
    d_sae: int = 4096
    k: int = 32  # topk: active latents per token; batchtopk: per token on average
    lr: float = 2e-3
    batch_size: int = 1024  # tokens per step
    training_tokens: int = 409_600  # total tokens seen; the cache repeats in shuffled epochs
    held_out_fraction: float = 0.1  # used by the train-sae stage for its evaluation split
    aux_coefficient: float = 1.0  # topk, batchtopk: weight of the dead-latent auxiliary loss
    sparsity_coefficient: float = 1.0  # jumprelu: L0 coefficient; standard: L1 coefficient
    # Steps without firing before a latent counts as dead (and so enters the aux loss).
    # sae-lens' default (1000 steps) is longer than a whole CPU run here.
    dead_steps: int = 50
    lr_warm_up_steps: int = 0
    lr_decay_fraction: float = 0.2  # final fraction of steps with linear decay to 0
    normalization: str = "expected_average_only_in"
    # Caches of up to this many tokens train in memory (every token loaded); bigger ones
    # stream through a shuffle buffer of this many tokens (`stream`): memory then grows with
    # this, not with the cache (about 3 x memory_tokens x d_model x 4 bytes at the peak).
    memory_tokens: int = 1_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise UserError(
                f"sae.train.architecture={self.architecture!r} is not one of {list(ARCHITECTURES)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise UserError(
                f"sae.train.normalization={self.normalization!r} is not one of "
                f"{list(NORMALIZATIONS)}"
            )
        if self.d_sae < 1 or self.batch_size < 1 or self.training_tokens < 1:
            raise UserError("sae.train.d_sae, batch_size and training_tokens must be positive")
        if self.memory_tokens < 2 * self.batch_size:
            raise UserError(
                f"sae.train.memory_tokens={self.memory_tokens} is below two batches "
                f"(2 x sae.train.batch_size = {2 * self.batch_size}); the shuffle buffer gives "
                "out half of itself at a time: raise memory_tokens"
            )
        if self.architecture in SAE_TOPK_ARCHITECTURES and not 1 <= self.k <= self.d_sae:
            raise UserError(f"sae.train.k={self.k} must be between 1 and d_sae={self.d_sae}")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise UserError(f"sae.train.held_out_fraction={self.held_out_fraction} not in [0, 1)")
        if not 0.0 <= self.lr_decay_fraction < 1.0:
            raise UserError(f"sae.train.lr_decay_fraction={self.lr_decay_fraction} not in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAETrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown sae.train keys {unknown}; known: {sorted(known)}")
        return cls(**data)
