"""lm-evaluation-harness as a way in: the `sae_unlearn` lm-eval model (an HFLM with the clamp
hook attached to every forward and `generate`), its model_args checks and clamp loading.

lm-eval is an optional extra (`pip install 'sae-unlearn[lm-eval]'`): `register()` imports
it, and registers the model, only when asked.
"""

from __future__ import annotations

from sae_unlearn.errors import UserError

INSTALL = "pip install 'sae-unlearn[lm-eval]'"


def register() -> type:
    """Import lm-eval and register the `sae_unlearn` model with it; returns the model class."""
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        raise UserError(f"lm-evaluation-harness is not installed ({exc}). Fix: {INSTALL}") from None
    from sae_unlearn.harness.model import SaeUnlearnLM

    return SaeUnlearnLM
