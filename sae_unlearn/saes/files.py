"""The files of a sae-lens SAE directory (`cfg.json` + `sae_weights.safetensors`), checked
before anything loads them.

sae-lens names the two files in `sae_lens.constants`, but importing that module runs
sae-lens's package init (torch, transformers, wandb: about 4 s of a process), and clamp-config
reads a directory's identity without loading the SAE. `tests/saes/test_files.py` checks the
names equal sae-lens's.
"""

from __future__ import annotations

from pathlib import Path

from sae_unlearn.errors import MissingInputError

SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
# Weight files that torch/pickle would deserialise; loading one can run arbitrary code.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


def sae_dir_checked(path: str | Path) -> Path:
    """`path`, refused unless it is a sae-lens SAE directory (safetensors weights)."""
    path = Path(path)
    if not path.is_dir():
        raise MissingInputError(
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
        raise MissingInputError(f"{path} has no {SAE_WEIGHTS_FILENAME}; {hint}")
    if not (path / SAE_CFG_FILENAME).is_file():
        raise MissingInputError(
            f"{path} has no {SAE_CFG_FILENAME}; save the SAE with sae-lens `sae.save_model(dir)`"
        )
    return path
