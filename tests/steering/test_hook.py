import pytest
import torch

from sae_unlearn.steering import (
    ClampConfig,
    ClampHook,
    SteeringRow,
    clamp_prime,
    gated_clamp,
    refusal_clamp,
)
from sae_unlearn.steering.positions import plan, read_forward
from tests.steering.reference import reference_edit, reference_steer
from tests.tiny import D_IN, firing_latents, random_sae


@pytest.mark.parametrize("kind", ["jumprelu", "standard", "topk", "topk_rescaled"])
@pytest.mark.parametrize("mode", ["clamp_prime", "refusal_clamp", "gated_clamp"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hook_equals_full_encode_clamp_decode(kind, mode, dtype):
    sae = random_sae(kind).to(dtype)
    h = torch.randn(3, 7, D_IN, dtype=dtype) * 2
    latents = firing_latents(sae, h, 5)
    if mode == "clamp_prime":
        cfg = clamp_prime(0, latents, -30.0)
    elif mode == "gated_clamp":
        # Thresholds at each latent's median activation: the gate opens in some sequences.
        f = sae.encode(h)[..., latents].detach()
        cfg = gated_clamp(0, latents, f.flatten(0, 1).median(0).values.tolist(), -30.0)
    else:
        cfg = refusal_clamp(0, latents, refusal_latent=latents[-1] + 1, threshold=0.05, value=-50.0)
    with torch.no_grad():
        expected = reference_steer(sae, cfg, h)
        got = ClampHook(sae, cfg)(h)
    assert not torch.allclose(expected, h, atol=1e-3)  # the clamp did something
    # float32 rounds differently along the two paths at |h| ~ 50; float64 shows exactness.
    rtol = 1e-5 if dtype == torch.float32 else 0
    torch.testing.assert_close(got, expected, rtol=rtol, atol=1e-5)


def test_topk_decoder_norm_handled_as_sae_lens_does():
    sae = random_sae("topk_rescaled").double()
    norms = sae.W_dec.norm(dim=-1)
    assert norms.min() < 0.5 and norms.max() > 2.0  # far from unit norm
    # float32 values: sae-lens casts its input to the config dtype (float32) first
    h = (torch.randn(2, 6, D_IN) * 2).double()
    hook = ClampHook(sae, clamp_prime(0, firing_latents(sae, h, 4), -30.0))
    with torch.no_grad():
        f = sae.encode(h)  # sae-lens: pre-activations times the decoder norms
        torch.testing.assert_close(
            hook.slice.encode(h), f[..., hook.slice.index], rtol=0, atol=1e-12
        )
        # sae-lens decodes `f / norm @ W_dec`: the residual change of an edit is scaled likewise
        delta = torch.zeros_like(f)
        delta[..., hook.slice.index] = 1.5
        torch.testing.assert_close(
            hook.slice.decode_delta(delta[..., hook.slice.index]),
            sae.decode(f + delta) - sae.decode(f),
            rtol=0,
            atol=1e-12,
        )


def test_hook_matches_trained_sae_format(tmp_path):
    sae = random_sae("jumprelu", seed=3)
    sae.save_model(tmp_path / "sae")
    from sae_lens import SAE

    loaded = SAE.load_from_disk(tmp_path / "sae", device="cpu")
    h = torch.randn(2, 5, D_IN)
    cfg = clamp_prime(0, firing_latents(loaded, h, 3), -10.0)
    with torch.no_grad():
        torch.testing.assert_close(
            ClampHook(loaded, cfg)(h), reference_steer(loaded, cfg, h), rtol=0, atol=1e-5
        )


def test_clamp_only_where_latent_fires():
    sae = random_sae("jumprelu")
    h = torch.randn(4, 6, D_IN)
    latent = firing_latents(sae, h, 1)[0]
    hook = ClampHook(sae, clamp_prime(0, [latent], -100.0))
    with torch.no_grad():
        out = hook(h)
        fires = sae.encode(h)[..., latent] > 0
    changed = (out - h).abs().amax(-1) > 0
    after_bos = fires[:, 1:]
    assert after_bos.any() and (~after_bos).any() and fires[:, 0].any()
    # Position 0 (BOS) is left alone even where the latent fires there.
    assert torch.equal(changed[:, 1:], after_bos) and not changed[:, 0].any()


def test_every_csv_action_and_unconditional_clamp():
    sae = random_sae("standard")
    h = torch.randn(2, 4, D_IN)
    a, b, c, r = firing_latents(sae, h, 4)
    rows = [
        SteeringRow(a, "add", None, 0.0, 2.0),
        SteeringRow(b, "clamp_cond", None, float("-inf"), 3.0),  # unconditional
        SteeringRow(c, "clamp", None, 0.0, -5.0),  # the authors' clamp: steering_coefficient
        SteeringRow(c, "clamp_refusal", r, 0.01, -7.0),
    ]
    cfg = ClampConfig(0, rows)
    hook = ClampHook(sae, cfg)
    with torch.no_grad():
        f = sae.encode(h)
        edited = hook.edit(f[..., hook.slice.index])
    pos = hook.slice.position
    # Position 0 (BOS) is left alone by every action; checked after the rest.
    body, rest = edited[:, 1:], f[:, 1:]
    # `add` shifts the SAE input (tested below), not a latent.
    torch.testing.assert_close(body[..., pos[a]], rest[..., a])
    assert torch.all(body[..., pos[b]] == 3.0)
    fires_c = rest[..., c] > 0
    assert torch.all(body[..., pos[c]][fires_c] == -5.0)
    refuse = rest[..., c] > 0.01
    assert refuse.any() and torch.all(body[..., pos[r]][refuse] == -7.0)
    torch.testing.assert_close(body[..., pos[r]][~refuse], rest[..., r][~refuse])
    torch.testing.assert_close(edited[:, 0], f[:, 0][..., hook.slice.index])
    with torch.no_grad():
        torch.testing.assert_close(hook(h), reference_steer(sae, cfg, h), rtol=0, atol=1e-5)


def test_hook_is_differentiable():
    sae = random_sae("jumprelu")
    h = torch.randn(2, 3, D_IN, requires_grad=True)
    hook = ClampHook(sae, clamp_prime(0, firing_latents(sae, h.detach(), 3), -10.0))
    hook(h).pow(2).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_out_of_range_latents_rejected():
    sae = random_sae("jumprelu")
    with pytest.raises(ValueError, match="latent_idx=64 is out of range for an SAE with 64"):
        ClampHook(sae, clamp_prime(0, [1, 64], -1.0))
    with pytest.raises(ValueError, match="refuse_id=999 is out of range"):
        ClampHook(sae, refusal_clamp(0, [1], 999, 0.05, -5.0))


def test_bos_and_pads_are_left_alone_by_every_action():
    sae = random_sae("standard")
    a, b, c, d, r, g = 3, 7, 11, 19, 23, 29
    rows = [
        SteeringRow(a, "add", None, 0.0, 2.0),
        SteeringRow(b, "clamp_cond", None, 0.5, 3.0),
        SteeringRow(c, "clamp", None, 0.0, -5.0),
        SteeringRow(d, "clamp_refusal", r, 0.5, -7.0),
        SteeringRow(g, "clamp_gated", None, 1.0, -9.0),
    ]
    cfg = ClampConfig(0, rows)
    hook = ClampHook(sae, cfg)
    torch.manual_seed(0)
    f = torch.rand(2, 6, 64) * 0.4  # under every condition's threshold, but firing
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    # Every latent fires hard on row 0's pads and BOS (column 2) and row 1's BOS.
    f[0, :3] = 10.0
    f[1, 0] = 10.0
    where = plan(read_forward({"input_ids": mask, "attention_mask": mask}), None, gated=True)
    edited = hook.edit(f[..., hook.slice.index], where)
    torch.testing.assert_close(edited, reference_edit(f, cfg, mask)[..., hook.slice.index])
    idx = hook.slice.index
    assert torch.equal(edited[0, :3], f[0, :3][..., idx]) and torch.equal(
        edited[1, 0], f[1, 0, idx]
    )
    assert not hook.last_open.any()  # what fired at BOS and the pads opened no gate
    pos = hook.slice.position
    assert torch.all(edited[0, 3:, pos[c]] == -5.0) and torch.all(
        edited[1, 1:, pos[g]] == f[1, 1:, g]
    )
    # Unpadded, the same holds at position 0 when the hook is called on a tensor.
    torch.testing.assert_close(hook.edit(f[1:, :, idx]), reference_edit(f[1:], cfg)[..., idx])


def test_batchtopk_sae_hook_encodes_only_the_latents_it_edits():
    """A BatchTopK SAE is a JumpReLU SAE at inference: the hook keeps only the edited
    latents' encoder columns (a TopK SAE needs all of them to find the k-th) and still
    steers exactly as encoding, clamping and decoding the whole SAE does."""
    from sae_unlearn.saes.config import SAETrainConfig
    from sae_unlearn.saes.train import train_sae

    g = torch.Generator().manual_seed(0)
    train = torch.randn(1024, D_IN, generator=g) * 3
    cfg = SAETrainConfig(
        architecture="batchtopk", d_sae=48, k=4, batch_size=128, training_tokens=128 * 20
    )
    sae = train_sae(train, cfg)
    h = torch.randn(2, 9, D_IN, generator=g) * 3
    latents = firing_latents(sae, h, 5)
    hook = ClampHook(sae, clamp_prime(0, latents, -30.0))
    assert hook.slice.architecture == "jumprelu"
    assert hook.slice.encoded_columns == len(latents) == hook.slice.W_enc.shape[1]
    assert not hasattr(hook.slice, "W_enc_full")
    with torch.no_grad():
        torch.testing.assert_close(
            hook(h), reference_steer(sae, clamp_prime(0, latents, -30.0), h), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("kind", ["jumprelu", "standard", "topk_rescaled"])
def test_clamp_sets_the_steering_coefficient_where_the_latent_fires(kind):
    """The authors' `clamp`: f_i = steering_coefficient where f_i > 0; clamp_value unread."""
    sae = random_sae(kind).double()
    h = (torch.randn(2, 6, D_IN) * 2).double()
    latent = firing_latents(sae, h, 1)[0]
    cfg = ClampConfig(0, [SteeringRow(latent, "clamp", None, 123.0, -300.0)])
    hook = ClampHook(sae, cfg)
    with torch.no_grad():
        f = sae.encode(h)[..., hook.slice.index]
        edited = hook.edit(f)[:, 1:, hook.slice.position[latent]]
        before = f[:, 1:, hook.slice.position[latent]]
        assert (before > 0).any() and (before == 0).any()
        torch.testing.assert_close(edited, torch.where(before > 0, -300.0, before))
        torch.testing.assert_close(hook(h), reference_steer(sae, cfg, h), rtol=1e-5, atol=1e-5)


def normalised_sae(norm: str):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(1)
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=64, normalize_activations=norm))
    with torch.no_grad():
        for w in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            w.normal_(0, 0.3)
    return sae.eval().double()


@pytest.mark.parametrize("kind", ["jumprelu", "topk_rescaled", "none", "layer_norm", "norm"])
def test_add_shifts_the_sae_input_and_keeps_the_clean_error(kind):
    """The authors' `add`: c * W_dec[i] added to the SAE input, so it passes through the
    encoder; the error term comes from the clean input. Not the residual plus c * W_dec[i]."""
    if kind in ("jumprelu", "topk_rescaled"):
        sae = random_sae(kind).double()
    else:
        sae = normalised_sae({"norm": "constant_norm_rescale"}.get(kind, kind))
    h = (torch.randn(2, 6, D_IN) * 2).double()
    a, b, c = firing_latents(sae, h, 3)
    add = [SteeringRow(a, "add", None, 0.0, 4.0), SteeringRow(b, "add", None, 0.0, -3.0)]
    with torch.no_grad():
        shift = 4.0 * sae.W_dec[a] - 3.0 * sae.W_dec[b]
        by_hand = h + sae.decode(sae.encode(h + shift)) - sae.decode(sae.encode(h))
        got = ClampHook(sae, ClampConfig(0, add))(h)
        # sae-lens casts its input to its config dtype, float32: agreement to float32 rounding
        torch.testing.assert_close(got[:, 1:], by_hand[:, 1:], rtol=1e-5, atol=1e-5)
        assert torch.equal(got[:, 0], h[:, 0])  # BOS left alone
        assert not torch.allclose(got[:, 1:], (h + shift)[:, 1:], atol=1e-3)
        # With a clamp: its condition reads the latents of the shifted input.
        cfg = ClampConfig(0, [*add, SteeringRow(c, "clamp", None, 0.0, -20.0)])
        torch.testing.assert_close(
            ClampHook(sae, cfg)(h), reference_steer(sae, cfg, h), rtol=1e-5, atol=1e-5
        )


def test_add_rows_may_repeat_a_latent_and_their_shifts_sum():
    sae = random_sae("standard").double()
    h = (torch.randn(2, 5, D_IN) * 2).double()
    a = firing_latents(sae, h, 1)[0]
    twice = [SteeringRow(a, "add", None, 0.0, 1.5), SteeringRow(a, "add", None, 0.0, 2.5)]
    once = [SteeringRow(a, "add", None, 0.0, 4.0)]
    with torch.no_grad():
        got = ClampHook(sae, ClampConfig(0, twice))(h)
        torch.testing.assert_close(got, ClampHook(sae, ClampConfig(0, once))(h))
        torch.testing.assert_close(
            got, reference_steer(sae, ClampConfig(0, twice), h), rtol=1e-5, atol=1e-5
        )
