"""SAE quality: hand-checked metrics and whole-sequence held-out splits."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.saes.quality import evaluate_sae, held_out_mask, split_held_out


def test_evaluate_sae_hand_built():
    # Latents +e_i and -e_i decode back exactly, so reconstruction is perfect.
    eye = torch.eye(4)
    sae = StandardSAE(StandardSAEConfig(d_in=4, d_sae=8, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    x = torch.rand(100, 4) + 0.5  # positive everywhere: the -e_i latents never fire
    metrics = evaluate_sae(sae, x, batch_size=7)
    assert metrics["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["l0"] == pytest.approx(4.0)
    assert metrics["dead_fraction"] == pytest.approx(0.5)
    assert metrics["n_tokens"] == 100
    # A decoder that always outputs the mean explains exactly none of the variance.
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.b_dec.copy_(x.mean(0))
    assert evaluate_sae(sae, x)["explained_variance"] == pytest.approx(0.0, abs=1e-6)


def test_held_out_mask_splits_whole_sequences():
    sequence_ids = torch.arange(20).repeat_interleave(5)
    mask = held_out_mask(sequence_ids, 0.2, seed=0)
    held = set(sequence_ids[mask].tolist())
    assert len(held) == 4
    assert held.isdisjoint(sequence_ids[~mask].tolist())
    assert torch.equal(mask, held_out_mask(sequence_ids, 0.2, seed=0))
    assert not held_out_mask(sequence_ids, 0.0, seed=0).any()


def test_split_held_out_keeps_every_token_once():
    acts = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    seqs = torch.arange(4).repeat_interleave(5)
    other = (acts + 100, seqs)
    train, held, split = split_held_out([(acts, seqs), other], 0.25, seed=3)
    assert split == "held_out"
    # One of four sequences per part is held out: 5 tokens of each part.
    assert len(held) == 10 and len(train) == 30
    values = sorted(torch.cat([train, held])[:, 0].tolist())
    assert values == sorted(acts[:, 0].tolist() + (acts[:, 0] + 100).tolist())
    train, held, split = split_held_out([(acts, seqs)], 0.0, seed=3)
    assert split == "train" and torch.equal(train, acts) and torch.equal(held, acts)
