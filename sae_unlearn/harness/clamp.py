"""The clamp a harness run attaches: our clamp YAML or the paper's steering CSV, checked
against its SAE before the model loads."""

from __future__ import annotations

import re
from pathlib import Path

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.run import checked_clamp
from sae_unlearn.saes import sae_dir_checked
from sae_unlearn.saes.identity import check_csv_sae_names, sae_identity
from sae_unlearn.steering import ClampConfig, read_steering_csv


def hook_name_layer(hook_name: str) -> int | None:
    """The block a sae-lens hook name ("blocks.{layer}.hook_...") reads, or None."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_\w+", hook_name or "")
    return int(match.group(1)) if match else None


def read_clamp_file(
    sae_dir: str | Path, clamp: str | Path, layer: int | None = None
) -> ClampConfig:
    """A clamp config from `clamp`: a YAML written by `sae-unlearn clamp-config` (which
    names its layer and SAE), or a paper steering CSV, hooked at `layer` or else at the
    layer the SAE was trained on (its sae-lens hook name)."""
    sae_dir, clamp = Path(sae_dir_checked(sae_dir)), Path(clamp)
    if clamp.suffix.lower() != ".csv":
        cfg = checked_clamp(sae_dir, clamp)
        if layer is not None and layer != cfg.layer:
            raise UserError(
                f"model_args layer={layer}, but {clamp} clamps layer {cfg.layer}. Fix: drop "
                "layer= (a clamp YAML names its own layer; it is for steering CSVs)"
            )
        return cfg
    identity = sae_identity(sae_dir)
    if layer is None:
        layer = hook_name_layer(identity["hook_name"])
        if layer is None:
            raise UserError(
                f"{clamp} is a steering CSV, which names no layer, and the SAE in {sae_dir} "
                f"records no block in its hook name ({identity['hook_name']!r}). "
                "Fix: add layer=N to model_args"
            )
    cfg = read_steering_csv(clamp, layer)
    check_csv_sae_names([(r.sae_release, r.sae_id) for r in cfg.rows], identity, str(clamp))
    return cfg
