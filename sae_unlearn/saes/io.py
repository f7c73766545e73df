"""SAE directories in sae-lens format (`cfg.json` + `sae_weights.safetensors`): load, save, check.

Every SAE here is a sae-lens inference `SAE`, so downstream code never cares where an SAE came
from: a hub release, a user's directory, or training over the activation cache.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from sae_lens import SAE

from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_path
from sae_unlearn.saes.config import SAESourceConfig
from sae_unlearn.saes.files import sae_dir_checked
from sae_unlearn.saes.hub import from_pretrained


def load_sae_dir(path: str | Path, device: str = "cpu") -> SAE:
    """A sae-lens SAE directory (safetensors only; never unpickles anything)."""
    path = sae_dir_checked(path)
    sae = SAE.load_from_disk(path, device=device)
    sae.eval()
    return sae


def load_sae(cfg: SAESourceConfig, device: str = "cpu") -> SAE:
    """Load the SAE named by `cfg` (`pretrained`: sae-lens' hub loader, from the Hugging Face
    cache when offline)."""
    if cfg.source == "pretrained":
        sae = from_pretrained(cfg.release, cfg.sae_id, device=device)
        # Saved with the SAE (cfg.json metadata), so a clamp config can name the SAE it is for.
        sae.cfg.metadata["sae_lens_release"] = cfg.release
        sae.cfg.metadata["sae_lens_id"] = cfg.sae_id
        sae.eval()
        return sae
    if cfg.source == "path":
        return load_sae_dir(cfg.path, device=device)
    raise UserError("sae.source=train has nothing to load; train one with `train_sae`")


def save_sae(sae: SAE, out_dir: str | Path) -> Path:
    """Write `sae` as a sae-lens directory, atomically (a crash never leaves half an SAE)."""
    with atomic_path(out_dir) as tmp:
        sae.save_model(tmp)
    return Path(out_dir)


def check_sae_width(
    sae: SAE, d_model: int, found: str, advice: str, origin: str | None = None
) -> None:
    """Fail when the SAE's input width is not `d_model`: the one width check. `found` says
    where `d_model` comes from, `advice` what to do, `origin` where the SAE comes from."""
    d_in = int(sae.cfg.d_in)
    if d_in != d_model:
        sae_name = f"the SAE from {origin}" if origin else "the SAE"
        raise UserError(f"{sae_name} reads {d_in}-dimensional activations but {found}; {advice}")


def check_sae_matches_model(sae: SAE, d_model: int, path: str | Path) -> None:
    """Fail early and clearly when the SAE was made for another model's residual width."""
    check_sae_width(
        sae,
        d_model,
        found=f"the model's hidden size is {d_model}",
        advice="use an SAE trained on this model and layer (set sae.source: train, or "
        "sae.release/sae.sae_id/sae.path to an SAE for this model)",
        origin=str(path),
    )


def warn_if_other_layer(
    sae: SAE, layer: int, origin: str | None = None, stacklevel: int = 2
) -> None:
    """Warn when the SAE's own hook name says it was trained on another layer; `stacklevel`
    as `warnings.warn`'s, counted from the caller."""
    hook = getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
    if hook and f".{layer}." not in hook:
        sae_name = f"the SAE from {origin}" if origin else "the SAE"
        warnings.warn(
            f"{sae_name} was trained on {hook}, but sae.layer={layer}; "
            "set sae.layer to the SAE's layer (and cache it)",
            stacklevel=stacklevel + 1,
        )
