"""The clamp config YAML the steered commands read: the one default and existence check."""

from __future__ import annotations

from pathlib import Path

from pipeline.params import Params
from sae_unlearn.errors import UserError


def clamp_file(p: Params, option: str | Path | None, allow_none: bool = False) -> Path | None:
    """`option`, else `<clamp.dir>/clamp.yaml`; `none` (where `allow_none`) means unsteered."""
    path = str(option or Path(p.get("clamp.dir")) / "clamp.yaml")
    if allow_none and path.lower() == "none":
        return None
    if not Path(path).exists():
        raise UserError(f"{path} does not exist; run `sae-unlearn clamp-config`")
    return Path(path)
