"""Training an SAE with sae-lens' `SAETrainer` on in-memory cached activations."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens import (
    SAE,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
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

from sae_unlearn.errors import UserError
from sae_unlearn.saes.config import SAETrainConfig


def shuffled_batches(
    activations: torch.Tensor, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless seeded epochs of shuffled full batches: the sae-lens DataProvider."""
    generator = torch.Generator().manual_seed(seed)
    n = len(activations)
    if batch_size > n:
        raise UserError(f"batch_size={batch_size} exceeds the {n} available tokens")
    while True:
        order = torch.randperm(n, generator=generator)
        # The last partial batch of each epoch is dropped; the next epoch reshuffles,
        # so no token is systematically left out.
        for lo in range(0, n - batch_size + 1, batch_size):
            yield activations[order[lo : lo + batch_size]]


def _training_sae(cfg: SAETrainConfig, d_in: int) -> TrainingSAE:
    common = {"d_in": d_in, "d_sae": cfg.d_sae, "normalize_activations": cfg.normalization}
    if cfg.architecture == "batchtopk":
        # k active latents per token on average over a batch while training; sae-lens saves
        # it as a JumpReLU SAE with one threshold (calibrated in train_sae), so a latent's
        # activation depends on its own column alone and the hook encodes only those
        # it clamps (a TopK SAE needs all d_sae pre-activations to find the k-th).
        return BatchTopKTrainingSAE(
            BatchTopKTrainingSAEConfig(**common, k=cfg.k, aux_loss_coefficient=cfg.aux_coefficient)
        )
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
    trainer: SAETrainer, mean: torch.Tensor, cfg: SAETrainConfig, n_batches: int
) -> None:
    """Start the decoder bias at the data mean (`mean`, float64, in the raw space; scaled
    here into the space the SAE trains in).

    Residual streams sit far from the origin (at layer 9 of Gemma 3 270M one dimension
    averages about 6,300 while tokens vary by about 1,500), and Adam moves b_dec by about
    lr per step, so from zero it would take tens of thousands of steps to get there.
    """
    scale = 1.0
    if cfg.normalization == "expected_average_only_in":
        # Estimated here, by sae-lens, instead of inside fit(), which then reuses it.
        trainer.activation_scaler.estimate_scaling_factor(
            d_in=len(mean),
            data_provider=trainer.data_provider,
            n_batches_for_norm_estimate=n_batches,
        )
        scale = trainer.activation_scaler.scaling_factor
    trainer.sae.b_dec.data.copy_((mean * scale).to(trainer.sae.b_dec.dtype))


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


# Tokens the BatchTopK threshold is calibrated on, and how many are encoded at a time: the
# cut-off is merged chunk by chunk, so memory holds one chunk's pre-activations (4,096 x d_sae
# floats) and the k x 32,768 largest values, not all 32,768 x d_sae at once (2.5 GB at the
# peak for d_sae 4,096, growing with d_sae).
CALIBRATION_TOKENS = 32_768
CALIBRATION_CHUNK = 4_096


@torch.no_grad()
def calibrate_batchtopk_threshold(
    sae: SAE, activations: torch.Tensor, k: float, seed: int, n_tokens: int = CALIBRATION_TOKENS
) -> float:
    """Set a BatchTopK SAE's one JumpReLU threshold to the batch-top-k cut-off over a seeded
    sample of its training tokens: k latents per token on average pass it there, as
    BatchTopK kept while training.

    sae-lens saves the threshold as a moving average of each training batch's smallest
    kept activation. On a short CPU run that average still lags the weights: on a
    40k-token embedded layer-9 cache (400 steps, lr 0.002) it left held-out L0 at 27.6 for
    k = 32, explained variance 0.924 and 6.2% dead latents, against 32.6, 0.928 and 3.1%
    once calibrated.
    """
    generator = torch.Generator().manual_seed(seed)
    n = min(n_tokens, len(activations))
    sample = activations[torch.randperm(len(activations), generator=generator)[:n]]
    sample = sample.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
    n_kept = max(1, min(int(round(k * n)), n * sae.cfg.d_sae))
    kept = sample.new_empty(0)
    for lo in range(0, n, CALIBRATION_CHUNK):
        pre = sae.process_sae_in(sample[lo : lo + CALIBRATION_CHUNK]) @ sae.W_enc + sae.b_enc
        # The n_kept largest of all values are among the n_kept largest of the ones so far
        # and the n_kept largest of this chunk: the cut-off is exactly the whole sample's.
        candidates = torch.cat([kept, pre.flatten()])
        kept = candidates.topk(min(n_kept, len(candidates))).values
    cut = kept[n_kept - 1]
    # JumpReLU keeps pre > threshold; the largest float below the cut keeps the cut itself.
    threshold = torch.nextafter(cut, torch.tensor(float("-inf"), dtype=cut.dtype))
    sae.threshold.data.fill_(threshold.item())
    return float(threshold)


@dataclass
class TrainingData:
    """What `fit_sae` needs of the training tokens, in memory or streamed."""

    provider: Iterator[torch.Tensor]  # endless batches of `min(batch_size, n_tokens)`
    n_tokens: int
    mean: torch.Tensor  # float64 `[d_in]`: the decoder bias's start
    calibration: torch.Tensor  # tokens the BatchTopK threshold is calibrated on


def train_sae(
    activations: torch.Tensor,
    cfg: SAETrainConfig,
    device: str = "cpu",
    metadata: dict[str, Any] | None = None,
) -> SAE:
    """Train an SAE with sae-lens' `SAETrainer` on in-memory activations `[n, d_in]`
    (seeded epochs of shuffled batches; `stream.train_sae_streamed` for bigger caches)."""
    if activations.ndim != 2:
        raise ValueError(
            f"activations must be [n_tokens, d_in], got shape {tuple(activations.shape)}"
        )
    activations = activations.float().contiguous()
    batch_size = min(cfg.batch_size, len(activations))
    data = TrainingData(
        provider=shuffled_batches(activations, batch_size, cfg.seed),
        n_tokens=len(activations),
        mean=activations.double().mean(0),
        calibration=activations,
    )
    return fit_sae(data, cfg, device, metadata)


def fit_sae(
    data: TrainingData,
    cfg: SAETrainConfig,
    device: str = "cpu",
    metadata: dict[str, Any] | None = None,
) -> SAE:
    """Train with sae-lens' `SAETrainer` on `data.provider`.

    Deterministic for a given seed (on one device): the seed fixes the weight init and
    the batch order. Activations are rescaled to mean norm sqrt(d_in) during training
    (residual norms here are in the thousands) and the scale is folded back into the
    weights, so the returned SAE reads raw activations.
    """
    n, d_in = data.n_tokens, len(data.mean)
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
        trainer = SAETrainer(
            cfg=trainer_cfg, sae=training_sae.to(device), data_provider=data.provider
        )
        _init_b_dec_to_mean(trainer, data.mean, cfg, trainer_cfg.n_batches_for_norm_estimate)
        trained = trainer.fit()
    sae = to_inference_sae(trained, device=device)
    if cfg.architecture == "batchtopk":
        calibrate_batchtopk_threshold(sae, data.calibration, cfg.k, cfg.seed)
    return sae
