"""bfloat16 and float16, as `model.dtype` loads gemma-2-2b (the tiny fixture, offline): the
clamp hook and the letter-format evaluation keep float32's results within the dtype's
precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_unlearn.data.sources import load_questions
from sae_unlearn.evaluation import EvalConfig
from sae_unlearn.evaluation.run import evaluate_questions
from sae_unlearn.models import load_model
from sae_unlearn.saes.io import load_sae
from sae_unlearn.steering import ClampHook, read_steering_csv, steer
from tests.paper import hub
from tests.paper.conftest import GEMMA2, point_at
from tests.paper.test_clamp import STEERING, residuals
from tests.paper.test_loaders import GEMMA_SCOPE

# Each dtype's relative precision (the unit roundoff); the tolerances below are a few of it,
# relative to the size of what is compared (measured: about 1.5 of it for both dtypes).
DTYPES = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
EVAL = EvalConfig(format="letter", batch_size=8)


@pytest.fixture(scope="module")
def parts(hub_home):
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, hub_home)
        models = {d: load_model(GEMMA2, d, device="cpu") for d in ("float32", *DTYPES)}
        sae = load_sae(GEMMA_SCOPE)
        wmdp = load_questions("wmdp-bio")
    cfg = read_steering_csv(STEERING / "paper_refusal_clamp.csv", layer=7)
    return models, sae, wmdp, cfg


def near_a_threshold(sae, h: torch.Tensor, margin: float) -> torch.Tensor:
    """Positions where rounding could flip the refusal condition: a CSV latent's
    pre-activation within `margin` of its JumpReLU threshold, or its activation of 0.05."""
    with torch.no_grad():
        latents = hub.PAPER_LATENTS
        pre = h @ sae.W_enc[:, latents] + sae.b_enc[latents]
        near_jump = (pre - sae.threshold[latents]).abs() < margin
        near_cond = (torch.where(pre > sae.threshold[latents], pre, 0.0) - 0.05).abs() < margin
    return (near_jump | near_cond).any(-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_hook_edits_as_in_float32(parts, dtype):
    models, sae, _, cfg = parts
    precision = DTYPES[dtype]
    hook = ClampHook(sae, cfg)
    kept = 0
    for h in residuals(*models["float32"], hook=None):
        x = h[None]
        with torch.no_grad():
            edit32 = hook(x) - x
            low = x.to(getattr(torch, dtype))
            out = hook(low)
        assert out.dtype == low.dtype
        edit = out.float() - low.float()
        keep = ~near_a_threshold(sae, h, margin=0.05)
        # the edit reaches about 40 ((-500 - f) times a unit decoder row of 2304 entries)
        atol = 4 * precision * float(edit32.abs().max())
        torch.testing.assert_close(edit[0, keep], edit32[0, keep], rtol=4 * precision, atol=atol)
        kept += int(keep.sum())
    assert kept > 0


def evaluate(model, tokenizer, wmdp, sae, cfg):
    """Per-question results of the wmdp fixture, unsteered and steered."""
    plain = evaluate_questions(model, tokenizer, wmdp, EVAL)
    with steer(model, ClampHook(sae, cfg)) as hook:
        steered = evaluate_questions(model, tokenizer, wmdp, EVAL, gates=hook)
    return plain, steered


@pytest.fixture(scope="module")
def float32_results(parts):
    models, sae, wmdp, cfg = parts
    return evaluate(*models["float32"], wmdp, sae, cfg)


@pytest.mark.parametrize("dtype", DTYPES)
def test_letter_evaluation_keeps_float32_results(parts, float32_results, dtype):
    models, sae, wmdp, cfg = parts
    precision = DTYPES[dtype]
    for ref, low in zip(float32_results, evaluate(*models[dtype], wmdp, sae, cfg), strict=True):
        ll_ref, ll_low = np.stack(ref["loglik"]), np.stack(low["loglik"])
        # log-likelihoods of " A".." D" (about -20 for the tiny random model)
        np.testing.assert_allclose(ll_low, ll_ref, rtol=4 * precision)
        # the same answer wherever float32's best choice leads by more than that
        top2 = -np.sort(-ll_ref, axis=1)[:, :2]
        clear = (top2[:, 0] - top2[:, 1]) > 8 * precision * np.abs(top2[:, 0])
        assert (ref["chosen"][clear] == low["chosen"][clear]).all()
