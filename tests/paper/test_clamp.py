"""The paper's two steering CSVs, as shipped, on the Gemma Scope SAE and gemma-2-2b loaded from
the offline hub cache: the hook changes the layer-7 residual exactly where its condition holds,
by the edited latents' decoder rows (the SAE's error term kept), and nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sae_unlearn.models import load_model
from sae_unlearn.models.capture import capture_residuals
from sae_unlearn.saes.io import load_sae
from sae_unlearn.steering import ClampHook, read_steering_csv, steer
from tests.paper import hub
from tests.paper.conftest import GEMMA2
from tests.paper.test_loaders import GEMMA_SCOPE

STEERING = Path(__file__).resolve().parents[2] / "data/steering"
TEXTS = [
    "Viruses replicate inside host cells and bacteria divide by binary fission.",
    "Paris is the capital of France and the Nile is the longest river in Africa.",
    "I'm sorry, but I can't help with that. The weather is nice today.",
]


@pytest.fixture(scope="module")
def gemma2_and_scope(hub_home):
    with pytest.MonkeyPatch.context() as mp:
        from tests.paper.conftest import point_at

        point_at(mp, hub_home)
        model, tokenizer = load_model(GEMMA2, device="cpu")
        sae = load_sae(GEMMA_SCOPE)
    return model, tokenizer, sae


def residuals(model, tokenizer, hook=None) -> list[torch.Tensor]:
    """Layer 7's output for each text, one sequence per forward (no padding)."""
    out = []
    for text in TEXTS:
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad(), capture_residuals(model, [7]) as captured:
            if hook is None:
                model(**ids)
            else:
                with steer(model, hook):
                    # registered after `steer`'s, the capture sees the steered output
                    with capture_residuals(model, [7]) as steered:
                        model(**ids)
                    captured = steered
            out.append(captured[7][0])
    return out


def test_the_csvs_latents_and_refuse_id_lie_in_the_sae(gemma2_and_scope):
    _, _, sae = gemma2_and_scope
    refusal = read_steering_csv(STEERING / "paper_refusal_clamp.csv", layer=7)
    prime = read_steering_csv(STEERING / "paper_clamp_prime.csv", layer=7)
    assert [r.latent_idx for r in refusal.rows] == hub.PAPER_LATENTS
    assert {r.refuse_id for r in refusal.rows} == {hub.REFUSAL_LATENT}
    assert [r.latent_idx for r in prime.rows] == hub.PAPER_LATENTS[:5]
    latents = {r.latent_idx for r in refusal.rows + prime.rows} | {hub.REFUSAL_LATENT}
    assert max(latents) < sae.cfg.d_sae == 16384
    ClampHook(sae, refusal), ClampHook(sae, prime)  # validated against the SAE's width


def test_refusal_clamp_changes_the_residual_only_where_a_latent_fires(gemma2_and_scope):
    model, tokenizer, sae = gemma2_and_scope
    cfg = read_steering_csv(STEERING / "paper_refusal_clamp.csv", layer=7)
    clean = residuals(model, tokenizer)
    steered = residuals(model, tokenizer, ClampHook(sae, cfg))
    refuse, fired = hub.REFUSAL_LATENT, 0
    for h, h2 in zip(clean, steered, strict=True):
        with torch.no_grad():
            f = sae.encode(h)
            cond = (f[:, hub.PAPER_LATENTS] > 0.05).any(-1)
            cond[0] = False  # the BOS slot: no action reads or edits it (README, The method)
            changed = (h2 - h).abs().amax(-1) > 0
            assert torch.equal(changed, cond)
            # f'_refuse = -500 where the condition holds; h' = h + (f' - f) @ W_dec
            expected = (-500.0 - f[:, refuse])[:, None] * sae.W_dec[refuse]
        torch.testing.assert_close(h2[cond] - h[cond], expected[cond], rtol=1e-4, atol=1e-3)
        fired += int(cond.sum())
    total = sum(len(h) - 1 for h in clean)
    assert 0 < fired < total  # the condition holds at some positions, not all


def test_clamp_prime_sets_firing_latents_to_minus_300_only_where_they_fire(gemma2_and_scope):
    model, tokenizer, sae = gemma2_and_scope
    cfg = read_steering_csv(STEERING / "paper_clamp_prime.csv", layer=7)
    latents = hub.PAPER_LATENTS[:5]
    clean = residuals(model, tokenizer)
    steered = residuals(model, tokenizer, ClampHook(sae, cfg))
    kinds = set()
    for h, h2 in zip(clean, steered, strict=True):
        with torch.no_grad():
            f = sae.encode(h)[:, latents]
            firing = f > 0
            firing[0] = False  # the BOS slot
            assert torch.equal((h2 - h).abs().amax(-1) > 0, firing.any(-1))
            expected = torch.where(firing, -300.0 - f, 0.0) @ sae.W_dec[latents]
        torch.testing.assert_close(h2 - h, expected, rtol=1e-4, atol=1e-3)
        kinds |= set(firing[1:].any(-1).tolist())
    assert kinds == {True, False}  # some positions fire, some do not
