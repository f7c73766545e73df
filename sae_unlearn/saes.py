"""Sparse autoencoders: load (Gemma Scope or a local dir), train on cached activations, evaluate.

Every SAE here is a sae-lens inference `SAE` and every saved SAE is a sae-lens directory
(`cfg.json` + `sae_weights.safetensors`), so downstream code never cares where an SAE
came from: a hub release, a user's directory, or `train_sae` over the activation cache.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import (
    SAE,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    SAETrainer,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
    TrainingSAE,
)
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from tqdm.auto import tqdm

from sae_unlearn.io import atomic_path

SOURCES = ("train", "pretrained", "path")
ARCHITECTURES = ("topk", "jumprelu", "standard")
NORMALIZATIONS = ("expected_average_only_in", "none")
# Weight files that torch/pickle would deserialise; loading one can run arbitrary code.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True)
class SAESourceConfig:
    """Where the SAE comes from: trained here, a sae-lens hub release, or a local directory."""

    source: str = "train"
    release: str | None = None  # source: pretrained, e.g. gemma-scope-2b-pt-res-canonical
    sae_id: str | None = None  # source: pretrained, e.g. layer_7/width_16k/canonical
    path: str | None = None  # source: path, a sae-lens directory

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"sae.source={self.source!r} is not one of {list(SOURCES)}")
        if self.source == "pretrained" and not (self.release and self.sae_id):
            raise ValueError("sae.source=pretrained needs both sae.release and sae.sae_id")
        if self.source == "path" and not self.path:
            raise ValueError("sae.source=path needs sae.path (a sae-lens SAE directory)")


@dataclass(frozen=True)
class SAETrainConfig:
    """How `train_sae` trains an SAE on cached activations (the `sae.train` params)."""

    architecture: str = "topk"
    d_sae: int = 4096
    k: int = 32  # topk: active latents per token
    lr: float = 2e-3
    batch_size: int = 1024  # tokens per step
    training_tokens: int = 307_200  # total tokens seen; the cache repeats in shuffled epochs
    held_out_fraction: float = 0.1  # used by the train-sae stage for its evaluation split
    aux_coefficient: float = 1.0  # topk: weight of the dead-latent auxiliary loss
    sparsity_coefficient: float = 1.0  # jumprelu: L0 coefficient; standard: L1 coefficient
    # Steps without firing before a latent counts as dead (and so enters the aux loss).
    # sae-lens' default (1000 steps) is longer than a whole CPU run here.
    dead_steps: int = 50
    lr_warm_up_steps: int = 0
    lr_decay_fraction: float = 0.2  # final fraction of steps with linear decay to 0
    normalization: str = "expected_average_only_in"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"sae.train.architecture={self.architecture!r} is not one of {list(ARCHITECTURES)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"sae.train.normalization={self.normalization!r} is not one of "
                f"{list(NORMALIZATIONS)}"
            )
        if self.d_sae < 1 or self.batch_size < 1 or self.training_tokens < 1:
            raise ValueError("sae.train.d_sae, batch_size and training_tokens must be positive")
        if self.architecture == "topk" and not 1 <= self.k <= self.d_sae:
            raise ValueError(f"sae.train.k={self.k} must be between 1 and d_sae={self.d_sae}")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError(f"sae.train.held_out_fraction={self.held_out_fraction} not in [0, 1)")
        if not 0.0 <= self.lr_decay_fraction < 1.0:
            raise ValueError(f"sae.train.lr_decay_fraction={self.lr_decay_fraction} not in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAETrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sae.train keys {unknown}; known: {sorted(known)}")
        return cls(**data)


# --- loading and saving -----------------------------------------------------------------


def _check_sae_dir(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(
            f"SAE directory {path} does not exist; point sae.path at a sae-lens SAE directory "
            f"({SAE_CFG_FILENAME} + {SAE_WEIGHTS_FILENAME})"
        )
    if not (path / SAE_WEIGHTS_FILENAME).is_file():
        pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = (
            f"it holds pickled weights {pickled}, which are refused because unpickling "
            "can run code; re-save the SAE with sae-lens `sae.save_model(dir)` (safetensors)"
            if pickled
            else "save it with sae-lens `sae.save_model(dir)`"
        )
        raise FileNotFoundError(f"{path} has no {SAE_WEIGHTS_FILENAME}; {hint}")
    if not (path / SAE_CFG_FILENAME).is_file():
        raise FileNotFoundError(
            f"{path} has no {SAE_CFG_FILENAME}; save the SAE with sae-lens `sae.save_model(dir)`"
        )


def load_sae_dir(path: str | Path, device: str = "cpu") -> SAE:
    """A sae-lens SAE directory (safetensors only; never unpickles anything)."""
    path = Path(path)
    _check_sae_dir(path)
    sae = SAE.load_from_disk(path, device=device)
    sae.eval()
    return sae


def load_sae(cfg: SAESourceConfig, device: str = "cpu") -> SAE:
    """Load the SAE named by `cfg` (`pretrained`: sae-lens hub loader, needs network)."""
    if cfg.source == "pretrained":
        sae = SAE.from_pretrained(cfg.release, cfg.sae_id, device=device)
        sae.eval()
        return sae
    if cfg.source == "path":
        return load_sae_dir(cfg.path, device=device)
    raise ValueError("sae.source=train has nothing to load; train one with `train_sae`")


def save_sae(sae: SAE, out_dir: str | Path) -> Path:
    """Write `sae` as a sae-lens directory, atomically (a crash never leaves half an SAE)."""
    with atomic_path(out_dir) as tmp:
        sae.save_model(tmp)
    return Path(out_dir)


def check_sae_matches_model(sae: SAE, d_model: int, path: str | Path) -> None:
    """Fail early and clearly when the SAE was made for another model's residual width."""
    d_in = int(sae.cfg.d_in)
    if d_in != d_model:
        raise ValueError(
            f"the SAE from {path} reads {d_in}-dimensional activations but the model's hidden "
            f"size is {d_model}; use an SAE trained on this model and layer (set sae.source: "
            "train, or sae.release/sae.sae_id/sae.path to an SAE for this model)"
        )


# --- training ---------------------------------------------------------------------------


def shuffled_batches(
    activations: torch.Tensor, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless seeded epochs of shuffled full batches: the sae-lens DataProvider."""
    generator = torch.Generator().manual_seed(seed)
    n = len(activations)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} available tokens")
    while True:
        order = torch.randperm(n, generator=generator)
        # The last partial batch of each epoch is dropped; the next epoch reshuffles,
        # so no token is systematically left out.
        for lo in range(0, n - batch_size + 1, batch_size):
            yield activations[order[lo : lo + batch_size]]


def _training_sae(cfg: SAETrainConfig, d_in: int) -> TrainingSAE:
    common = {"d_in": d_in, "d_sae": cfg.d_sae, "normalize_activations": cfg.normalization}
    if cfg.architecture == "topk":
        return TopKTrainingSAE(
            TopKTrainingSAEConfig(**common, k=cfg.k, aux_loss_coefficient=cfg.aux_coefficient)
        )
    if cfg.architecture == "jumprelu":
        return JumpReLUTrainingSAE(
            JumpReLUTrainingSAEConfig(**common, l0_coefficient=cfg.sparsity_coefficient)
        )
    return StandardTrainingSAE(
        StandardTrainingSAEConfig(**common, l1_coefficient=cfg.sparsity_coefficient)
    )


@torch.no_grad()
def _init_b_dec_to_mean(
    trainer: SAETrainer, activations: torch.Tensor, cfg: SAETrainConfig, n_batches: int
) -> None:
    """Start the decoder bias at the data mean (in the scaled space the SAE trains in).

    Residual streams sit far from the origin (at layer 9 of Gemma 3 270M one dimension
    averages about 6,300 while tokens vary by about 1,500), and Adam moves b_dec by about
    lr per step, so from zero it would take tens of thousands of steps to get there.
    """
    scale = 1.0
    if cfg.normalization == "expected_average_only_in":
        # Estimated here, by sae-lens, instead of inside fit(), which then reuses it.
        trainer.activation_scaler.estimate_scaling_factor(
            d_in=activations.shape[1],
            data_provider=trainer.data_provider,
            n_batches_for_norm_estimate=n_batches,
        )
        scale = trainer.activation_scaler.scaling_factor
    mean = activations.double().mean(0) * scale
    trainer.sae.b_dec.data.copy_(mean.to(trainer.sae.b_dec.dtype))


def to_inference_sae(training_sae: TrainingSAE, device: str = "cpu") -> SAE:
    """The inference SAE exactly as `SAE.load_from_disk` rebuilds it after saving.

    Going through sae-lens' own save/load path (rather than copying tensors by hand)
    applies its training-to-inference conversions, such as folding TopK decoder norms.
    """
    with tempfile.TemporaryDirectory(prefix="sae_unlearn_") as tmp:
        training_sae.save_inference_model(tmp)
        sae = SAE.load_from_disk(tmp, device=device)
    sae.eval()
    return sae


def train_sae(
    activations: torch.Tensor,
    cfg: SAETrainConfig,
    device: str = "cpu",
    metadata: dict[str, Any] | None = None,
) -> SAE:
    """Train an SAE with sae-lens' `SAETrainer` on in-memory activations `[n, d_in]`.

    Deterministic for a given seed (on one device): the seed fixes the weight init and
    the batch order. Activations are rescaled to mean norm sqrt(d_in) during training
    (residual norms here are in the thousands) and the scale is folded back into the
    weights, so the returned SAE reads raw activations.
    """
    if activations.ndim != 2:
        raise ValueError(
            f"activations must be [n_tokens, d_in], got shape {tuple(activations.shape)}"
        )
    activations = activations.float().contiguous()
    n, d_in = activations.shape
    batch_size = min(cfg.batch_size, n)
    steps = max(1, cfg.training_tokens // batch_size)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=cfg.lr,
        lr_end=cfg.lr,
        lr_scheduler_name="constant",
        lr_warm_up_steps=min(cfg.lr_warm_up_steps, steps // 2),
        lr_decay_steps=int(steps * cfg.lr_decay_fraction),
        device=device,
        dead_feature_window=cfg.dead_steps,
        feature_sampling_window=max(1, min(2000, steps)),
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
        # The norm estimate draws from the same provider; a few batches are plenty.
        n_batches_for_norm_estimate=max(1, min(100, n // batch_size)),
    )
    # fork_rng keeps the caller's global RNG untouched while seeding the init.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # Built on CPU so the init draws from the seeded CPU generator on any device.
        training_sae = _training_sae(cfg, d_in)
        for key, value in (metadata or {}).items():
            training_sae.cfg.metadata[key] = value
        provider = shuffled_batches(activations, batch_size, cfg.seed)
        trainer = SAETrainer(cfg=trainer_cfg, sae=training_sae.to(device), data_provider=provider)
        _init_b_dec_to_mean(trainer, activations, cfg, trainer_cfg.n_batches_for_norm_estimate)
        trained = trainer.fit()
    return to_inference_sae(trained, device=device)


# --- evaluation -------------------------------------------------------------------------


@torch.no_grad()
def evaluate_sae(
    sae: SAE, activations: torch.Tensor, batch_size: int = 4096, progress: bool = False
) -> dict[str, float | int]:
    """Reconstruction and sparsity of `sae` on `activations` `[n, d_in]`.

    explained_variance = 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (pooled over
    tokens, as sae-lens logs it); l0 = mean active latents per token; dead_fraction =
    share of latents that never fire on these tokens.
    """
    n = len(activations)
    if n == 0:
        raise ValueError("evaluate_sae needs at least one token")
    device = next(sae.parameters()).device
    batches = range(0, n, batch_size)
    # Two passes in float64: residual norms are in the thousands, so the one-pass
    # sum(x^2) - n*mean^2 form would lose the variance to cancellation.
    total = torch.zeros(activations.shape[1], dtype=torch.float64)
    for lo in batches:
        total += activations[lo : lo + batch_size].double().sum(0)
    mean = total / n
    sq_error = sq_total = 0.0
    active = 0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for lo in tqdm(batches, desc="evaluate SAE", disable=not progress):
        x = activations[lo : lo + batch_size].to(device)
        feats = sae.encode(x)
        x_hat = sae.decode(feats)
        sq_error += (x_hat.double() - x.double()).pow(2).sum().item()
        sq_total += (x.double().cpu() - mean).pow(2).sum().item()
        on = feats > 0
        active += int(on.sum().item())
        fired |= on.any(0)
    return {
        "explained_variance": 1.0 - sq_error / sq_total if sq_total > 0 else float("nan"),
        "l0": active / n,
        "dead_fraction": 1.0 - fired.float().mean().item(),
        "n_tokens": n,
    }


def describe_sae(sae: SAE) -> dict[str, Any]:
    """The SAE facts worth recording next to its metrics."""
    return {
        "architecture": sae.cfg.architecture(),
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
    }
