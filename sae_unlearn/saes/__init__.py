"""Sparse autoencoders in sae-lens format: settings (`config`), directories (`io`), training
(`train`) and quality metrics (`quality`).

`from_cache` (the train-sae stage's SAE for a cached layer) reads the activation cache, so it
is imported from its module only: importing this package must not pull in the cache code.
"""

from sae_unlearn.saes.config import (
    ARCHITECTURES,
    NORMALIZATIONS,
    SOURCES,
    SAESourceConfig,
    SAETrainConfig,
)
from sae_unlearn.saes.io import (
    PICKLE_SUFFIXES,
    check_sae_matches_model,
    check_sae_width,
    load_sae,
    load_sae_dir,
    sae_dir_checked,
    save_sae,
    warn_if_other_layer,
)
from sae_unlearn.saes.quality import describe_sae, evaluate_sae, held_out_mask, split_held_out
from sae_unlearn.saes.train import shuffled_batches, to_inference_sae, train_sae

__all__ = [
    "ARCHITECTURES",
    "NORMALIZATIONS",
    "PICKLE_SUFFIXES",
    "SOURCES",
    "SAESourceConfig",
    "SAETrainConfig",
    "check_sae_matches_model",
    "check_sae_width",
    "describe_sae",
    "evaluate_sae",
    "held_out_mask",
    "load_sae",
    "load_sae_dir",
    "sae_dir_checked",
    "save_sae",
    "shuffled_batches",
    "split_held_out",
    "to_inference_sae",
    "train_sae",
    "warn_if_other_layer",
]
