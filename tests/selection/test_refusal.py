"""The refusal latent: planted on the refusal-minus-neutral direction, it is found."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.activations import special_token_ids
from sae_unlearn.models import capture_residuals
from sae_unlearn.selection.refusal import find_refusal_latent, refusal_scores
from tests.selection.helpers import LAYER, D

REFUSALS = ("I'm sorry, but I can't help with that.", "Sorry, I cannot help with that request.")
NEUTRALS = ("The weather is nice today.", "Paris is the capital of France.")


def mean_residual(model, tokenizer, texts) -> torch.Tensor:
    special = torch.tensor(special_token_ids(tokenizer))
    parts = []
    with torch.no_grad(), capture_residuals(model, [LAYER]) as captured:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            model(input_ids=ids)
            parts.append(captured[LAYER][0][~torch.isin(ids[0], special)])
    return torch.cat(parts).mean(0)


@pytest.mark.parametrize("planted", [3, 11])
def test_find_refusal_latent_finds_the_planted_latent(tiny_model, planted):
    model, tokenizer = tiny_model
    refusal = mean_residual(model, tokenizer, REFUSALS)
    neutral = mean_residual(model, tokenizer, NEUTRALS)
    direction = (refusal - neutral) / (refusal - neutral).norm()
    torch.manual_seed(planted)
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=16, apply_b_dec_to_input=False))
    with torch.no_grad():
        # Every latent reads a random direction of the same norm; the planted one reads the
        # refusal-minus-neutral direction, offset so the neutral mean sits at zero.
        w = torch.nn.functional.normalize(torch.randn(D, 16), dim=0)
        w[:, planted] = direction
        sae.W_enc.copy_(w)
        sae.b_enc.zero_()
        sae.b_enc[planted] = -(neutral @ direction)
    table = refusal_scores(model, tokenizer, sae, LAYER, REFUSALS, NEUTRALS)
    assert find_refusal_latent(model, tokenizer, sae, LAYER, REFUSALS, NEUTRALS) == planted
    assert table["latent"].iloc[0] == planted
    best = table.iloc[0]
    assert best["score"] == pytest.approx(best["refusal_mean"] - best["neutral_mean"])
    assert best["refusal_freq"] > best["neutral_freq"]
    # Random directions also score (the choice is not trivial), just lower.
    assert (table["score"].iloc[1:].abs() > 0).any()
    # The default sentences run too, and the table covers every latent once.
    default = refusal_scores(model, tokenizer, sae, LAYER)
    assert sorted(default["latent"]) == list(range(16))


def test_find_refusal_latent_rejects_wrong_width(tiny_model):
    model, tokenizer = tiny_model
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    with pytest.raises(ValueError, match="reads 16-dimensional .* hidden size is 32"):
        find_refusal_latent(model, tokenizer, sae, LAYER)
