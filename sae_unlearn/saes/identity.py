"""Which SAE a clamp config was made for: its identity, recorded in clamp.yaml and checked
wherever the config is applied.

Latent indices mean nothing on another SAE: a config made for one dictionary silently clamps
unrelated features of another of the same width. The weight hash is the identity; release,
id, hook and widths are there so the refusal can say what differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sae_unlearn.errors import UserError, read_json_input, user_error
from sae_unlearn.saes.files import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

# Shown in this order when two identities are compared.
IDENTITY_KEYS = ("release", "sae_id", "path", "hook_name", "d_in", "d_sae", "weights_sha256")


def weights_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def sae_identity(sae_dir: str | Path) -> dict[str, Any]:
    """The identity of a sae-lens SAE directory (release and id when sae-lens recorded them)."""
    sae_dir = Path(sae_dir)
    fix = "save the SAE with sae-lens `sae.save_model(dir)`"
    cfg = read_json_input(sae_dir / SAE_CFG_FILENAME, "SAE config", fix)
    widths = {key: cfg.get(key) if isinstance(cfg, dict) else None for key in ("d_in", "d_sae")}
    for key, value in widths.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise user_error(
                sae_dir / SAE_CFG_FILENAME, f"`{key}` is {value!r}, not a positive integer", fix
            )
    metadata = cfg.get("metadata") or {}
    identity = {
        "release": metadata.get("sae_lens_release") or "",
        "sae_id": metadata.get("sae_lens_id") or "",
        "path": str(sae_dir),
        "hook_name": metadata.get("hook_name") or "",
        "d_in": widths["d_in"],
        "d_sae": widths["d_sae"],
        "weights_sha256": weights_sha256(sae_dir / SAE_WEIGHTS_FILENAME),
    }
    return identity


def _describe(identity: Mapping[str, Any]) -> str:
    parts = []
    for key in IDENTITY_KEYS:
        value = identity.get(key)
        if value not in (None, ""):
            shown = str(value)[:12] if key == "weights_sha256" else value
            parts.append(f"{key}={shown}")
    return ", ".join(parts) or "no identity"


def check_sae_identity(
    made_for: Mapping[str, Any] | None, actual: Mapping[str, Any], clamp_source: str
) -> None:
    """Refuse a clamp config recorded for another SAE, naming both. A config without a
    recorded identity (written by hand, or before identities) is accepted as it is."""
    if not made_for:
        return
    if made_for.get("weights_sha256") == actual.get("weights_sha256"):
        return
    raise UserError(
        f"{clamp_source} was made for another SAE ({_describe(made_for)}) than the one given "
        f"({_describe(actual)}). Fix: pass the SAE it was made for (--sae-dir / sae.dir), or "
        "rerun `sae-unlearn clamp-config` on this SAE"
    )


def check_csv_sae_names(
    names: Sequence[tuple[str, str]], actual: Mapping[str, Any], clamp_source: str
) -> None:
    """A paper steering CSV names its SAE per row (`sae_release`, `sae_id`): refuse rows that
    name another release or id than the SAE's own, where the SAE records them."""
    for release, sae_id in sorted(set(names)):
        for key, named in (("release", release), ("sae_id", sae_id)):
            own = actual.get(key)
            if named and own and named != own:
                raise UserError(
                    f"{clamp_source} names sae_{key.removeprefix('sae_')}={named!r}, but the "
                    f"SAE given is {key}={own!r} ({_describe(actual)}). Fix: pass the SAE the "
                    "CSV was written for, or correct the CSV's sae_release / sae_id columns"
                )
