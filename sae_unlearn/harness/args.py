"""Checks of the `sae_unlearn` model's `model_args`, before anything loads."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from sae_unlearn.errors import UserError

# Ours, beside HFLM's own parameters: the SAE directory, the clamp config, and the layer of a
# paper steering CSV (which does not name it).
OWN_ARGS = ("sae", "clamp", "layer")
# Passed through HFLM's **kwargs to `from_pretrained`; anything else there would be ignored
# or fail deep inside transformers, so it is refused here by name.
FROM_PRETRAINED_ARGS = ("attn_implementation",)


def check_model_args(given: Mapping[str, Any], hflm_args: Iterable[str]) -> None:
    """Refuse a model_args key that neither HFLM nor we read (naming it and the closest
    known key), `trust_remote_code=True`, and a clamp without its SAE or an SAE without a
    clamp."""
    known = sorted({*hflm_args, *OWN_ARGS, *FROM_PRETRAINED_ARGS})
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"model_args key {key!r} is not an argument of the sae_unlearn model; {hint}"
                f"its keys are {known}"
            )
    if given.get("trust_remote_code"):
        raise UserError(
            "model_args trust_remote_code=True is refused: it runs code from the model's "
            "repository. Fix: drop it (every model this tool steers loads without it)"
        )
    if (given.get("sae") is None) != (given.get("clamp") is None):
        raise UserError(
            "model_args need both sae=DIR and clamp=FILE (the clamp config names latents of "
            "that SAE), or neither for the unsteered model; "
            f"given: sae={given.get('sae')!r}, clamp={given.get('clamp')!r}"
        )
