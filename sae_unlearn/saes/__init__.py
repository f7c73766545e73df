"""Sparse autoencoders in sae-lens format: settings (`config`), the files of a
directory (`files`), loading and saving (`io`), training
(`train`), quality metrics (`quality`) and the identity a clamp config records (`identity`).

Names load on first use (lazy_loader, scientific Python's SPEC 1): `config` and `identity`
need no sae-lens, whose import (torch, transformers, wandb) costs a process about 4 s, and
clamp-config uses only them. `from_cache` (the train-sae stage's SAE for a cached layer) reads
the activation cache, so it is imported from its module only.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": [
            "ARCHITECTURES",
            "NORMALIZATIONS",
            "SOURCES",
            "SAESourceConfig",
            "SAETrainConfig",
        ],
        "files": ["PICKLE_SUFFIXES", "SAE_CFG_FILENAME", "SAE_WEIGHTS_FILENAME", "sae_dir_checked"],
        "io": [
            "check_sae_matches_model",
            "check_sae_width",
            "load_sae",
            "load_sae_dir",
            "save_sae",
            "warn_if_other_layer",
        ],
        "quality": ["describe_sae", "evaluate_sae", "held_out_mask", "split_held_out"],
        "train": ["shuffled_batches", "to_inference_sae", "train_sae"],
    },
)
