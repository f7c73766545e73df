"""The `sae_unlearn` lm-eval model: lm-eval's HFLM with the clamp hook attached to each
forward (`loglikelihood`) and to `generate` (`generate_until`, the gate carried across
decode steps by the hook itself).

It follows the pattern of lm-eval's own `steered` model (a hook context around
`_model_call` and `_model_generate`), with our hook, which lm-eval cannot express.
"""

from __future__ import annotations

import inspect
from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from sae_unlearn.evaluation.run import load_clamp_hook, maybe_steer
from sae_unlearn.harness.args import check_model_args
from sae_unlearn.harness.clamp import read_clamp_file
from sae_unlearn.steering import ClampHook

HFLM_ARGS = tuple(
    name for name in inspect.signature(HFLM.__init__).parameters if name not in ("self", "kwargs")
)


@register_model("sae_unlearn")
class SaeUnlearnLM(HFLM):
    """`--model sae_unlearn --model_args pretrained=DIR,sae=DIR,clamp=FILE[,layer=N]`, and
    any HFLM argument; without sae and clamp it is the unsteered model."""

    clamp_hook: ClampHook | None

    def __init__(
        self,
        pretrained: Any,
        sae: str | None = None,
        clamp: str | None = None,
        layer: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_model_args({"sae": sae, "clamp": clamp, "layer": layer, **kwargs}, HFLM_ARGS)
        # The clamp is read and checked against its SAE before the model loads.
        clamp_cfg = read_clamp_file(sae, clamp, layer) if clamp is not None else None
        super().__init__(pretrained=pretrained, **kwargs)
        self.clamp_hook = (
            load_clamp_hook(self.model, sae, clamp_cfg) if clamp_cfg is not None else None
        )

    def _model_call(self, inps, attn_mask=None, labels=None):
        with maybe_steer(self.model, self.clamp_hook):
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        with maybe_steer(self.model, self.clamp_hook):
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
