"""Training: better than untrained, deterministic per seed, RNG-neutral, every architecture."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sae_unlearn.saes.config import SAESourceConfig
from sae_unlearn.saes.io import load_sae, save_sae
from sae_unlearn.saes.quality import evaluate_sae
from sae_unlearn.saes.train import calibrate_batchtopk_threshold, train_sae
from tests.saes.samples import FAST


def test_training_improves_explained_variance(sparse_data, trained):
    untrained = train_sae(sparse_data, replace(FAST, training_tokens=FAST.batch_size, lr=1e-8))
    before = evaluate_sae(untrained, sparse_data)["explained_variance"]
    after = evaluate_sae(trained, sparse_data)
    assert after["explained_variance"] > 0.6
    assert after["explained_variance"] > before + 0.4
    assert after["l0"] <= FAST.k
    assert after["n_tokens"] == len(sparse_data)


def test_training_is_deterministic(sparse_data):
    cfg = replace(FAST, training_tokens=128 * 20)
    first, second = train_sae(sparse_data, cfg), train_sae(sparse_data, cfg)
    other = train_sae(sparse_data, replace(cfg, seed=1))
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.W_enc, other.W_enc)


def test_train_leaves_global_rng_alone(sparse_data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_sae(sparse_data, replace(FAST, training_tokens=128 * 2))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("architecture", ["jumprelu", "standard"])
def test_other_architectures_train_and_round_trip(tmp_path, sparse_data, architecture):
    cfg = replace(FAST, architecture=architecture, training_tokens=128 * 10)
    sae = train_sae(sparse_data, cfg)
    assert sae.cfg.architecture() == architecture
    loaded = load_sae(SAESourceConfig(source="path", path=str(save_sae(sae, tmp_path / "s"))))
    torch.testing.assert_close(loaded(sparse_data[:64]), sae(sparse_data[:64]))


def test_batchtopk_is_saved_as_jumprelu_with_one_calibrated_threshold(sparse_data):
    """BatchTopK trains with k active latents per token on average and is used as a JumpReLU
    SAE with one threshold (so the hook can encode only the latents it clamps), calibrated
    so that on the training tokens exactly k latents per token pass it on average."""
    sae = train_sae(sparse_data, replace(FAST, architecture="batchtopk"))
    assert sae.cfg.architecture() == "jumprelu"
    threshold = sae.threshold.detach()
    assert torch.all(threshold == threshold[0]) and threshold[0] > 0
    quality = evaluate_sae(sae, sparse_data)
    assert quality["explained_variance"] > 0.6
    # 2,048 tokens, all of them in the calibration sample: the count of pre-activations
    # above the threshold, done by hand, is k per token.
    with torch.no_grad():
        pre = (sparse_data - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert int((pre > threshold[0]).sum()) == FAST.k * len(sparse_data)
    assert quality["l0"] == pytest.approx(FAST.k, abs=0.01)


def test_batchtopk_calibration_sample_is_seeded(sparse_data):
    sae = train_sae(sparse_data, replace(FAST, architecture="batchtopk", training_tokens=1280))
    first = calibrate_batchtopk_threshold(sae, sparse_data, 4, seed=0, n_tokens=256)
    again = calibrate_batchtopk_threshold(sae, sparse_data, 4, seed=0, n_tokens=256)
    other = calibrate_batchtopk_threshold(sae, sparse_data, 4, seed=1, n_tokens=256)
    assert first == again and first != other
    assert float(sae.threshold.detach()[0]) == other


def test_batchtopk_calibration_in_chunks_finds_the_whole_sample_cut(sparse_data, monkeypatch):
    """Chunk by chunk (here 100 tokens at a time, so 21 chunks), the threshold still passes
    exactly k latents per token over the 2,048 calibration tokens, as ranking them all at
    once does (the count done by hand)."""
    import sae_unlearn.saes.train as train_module

    sae = train_sae(sparse_data, replace(FAST, architecture="batchtopk", training_tokens=1280))
    whole = calibrate_batchtopk_threshold(sae, sparse_data, 3, seed=0)
    monkeypatch.setattr(train_module, "CALIBRATION_CHUNK", 100)
    chunked = calibrate_batchtopk_threshold(sae, sparse_data, 3, seed=0)
    assert chunked == whole
    with torch.no_grad():
        pre = (sparse_data - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert int((pre > chunked).sum()) == 3 * len(sparse_data)
