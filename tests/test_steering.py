import pandas as pd
import pytest
import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)

from sae_unlearn.steering import (
    ClampConfig,
    ClampHook,
    SteeringRow,
    clamp_prime,
    gate_open,
    gated_clamp,
    needs_whole_sequences,
    read_clamp_yaml,
    read_steering_csv,
    reference_steer,
    refusal_clamp,
    steer,
    write_clamp_yaml,
    write_steering_csv,
)

D_IN, D_SAE = 32, 64


def random_sae(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE))
    elif kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=8))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.normal_(0, 0.3)
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.1)
        if kind == "jumprelu":
            sae.threshold.uniform_(0.0, 0.5)  # Gemma Scope style: per-latent thresholds
    return sae.eval()


def firing_latents(sae, h, n):
    rate = (sae.encode(h) > 0).float().mean(dim=(0, 1))
    return rate.argsort(descending=True)[:n].tolist()


@pytest.mark.parametrize("kind", ["jumprelu", "standard", "topk"])
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
    assert fires.any() and (~fires).any()
    assert torch.equal(changed, fires)


def test_every_csv_action_and_unconditional_clamp():
    sae = random_sae("standard")
    h = torch.randn(2, 4, D_IN)
    a, b, c, r = firing_latents(sae, h, 4)
    rows = [
        SteeringRow(a, "add", None, 0.0, 2.0),
        SteeringRow(b, "clamp_cond", None, float("-inf"), 3.0),  # unconditional
        SteeringRow(c, "clamp", None, -5.0, 0.0),
        SteeringRow(c, "clamp_refusal", r, 0.01, -7.0),
    ]
    cfg = ClampConfig(0, rows)
    hook = ClampHook(sae, cfg)
    with torch.no_grad():
        f = sae.encode(h)
        edited = hook.edit(f[..., hook.slice.index])
    pos = hook.slice.position
    torch.testing.assert_close(edited[..., pos[a]], f[..., a] + 2.0)
    assert torch.all(edited[..., pos[b]] == 3.0)
    fires_c = f[..., c] > 0
    assert torch.all(edited[..., pos[c]][fires_c] == -5.0)
    refuse = f[..., c] > 0.01
    assert torch.all(edited[..., pos[r]][refuse] == -7.0)
    torch.testing.assert_close(edited[..., pos[r]][~refuse], f[..., r][~refuse])
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


def test_gate_opens_at_first_trigger_and_stays_open():
    f = torch.tensor(
        [
            [[9.0, 0.0], [0.0, 1.0], [0.0, 6.0], [0.0, 0.0], [2.0, 0.0]],  # BOS fires: ignored
            [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]],  # never above 5
        ]
    )
    gate = gate_open(f, torch.tensor([5.0, 5.0]))
    assert gate.tolist() == [[False, False, True, True, True], [False] * 5]


def test_gated_clamp_edits_firing_latents_after_the_gate():
    sae = random_sae("standard")
    cfg = gated_clamp(0, [3, 7], [5.0, 100.0], -40.0)
    hook = ClampHook(sae, cfg)
    assert hook.sequence_level and not ClampHook(sae, clamp_prime(0, [3], -1.0)).sequence_level
    f = torch.tensor([[[0.0, 0.5], [1.0, 2.0], [6.0, 0.0], [0.0, 3.0], [2.0, 0.0]]])
    edited = hook.edit(f)
    expected = torch.tensor([[[0.0, 0.5], [1.0, 2.0], [-40.0, 0.0], [0.0, -40.0], [-40.0, 0.0]]])
    torch.testing.assert_close(edited, expected)


def test_steer_context_manager_on_model(tiny_model):
    model, tokenizer = tiny_model
    sae = random_sae("jumprelu")
    batch = tokenizer(["Viruses replicate inside host cells."], return_tensors="pt")
    with torch.no_grad():
        plain = model(**batch).logits
        hook = ClampHook(sae, clamp_prime(0, list(range(0, 64, 3)), -50.0))
        with steer(model, hook):
            steered = model(**batch).logits
        after = model(**batch).logits
    assert not torch.allclose(plain, steered)
    torch.testing.assert_close(plain, after)
    with pytest.raises(ValueError, match="clamp layer=5 but the model has 2"):
        with steer(model, hook, layer=5):
            pass
    gated = ClampHook(sae, gated_clamp(0, [1, 2], [0.0, 0.0], -5.0))
    with steer(model, hook):
        assert not needs_whole_sequences(model)
        with steer(model, gated):
            assert needs_whole_sequences(model)
    assert not needs_whole_sequences(model)


def test_yaml_and_csv_round_trip(tmp_path):
    cfg = refusal_clamp(7, [11766, 9723], 15864, 0.05, -500.0, "rel", "sid")
    write_clamp_yaml(cfg, tmp_path / "c.yaml")
    back = read_clamp_yaml(tmp_path / "c.yaml")
    assert back.rows == cfg.rows and back.layer == 7 and back.mode == "refusal_clamp"
    write_steering_csv(cfg, tmp_path / "c.csv")
    frame = pd.read_csv(tmp_path / "c.csv")
    assert list(frame.columns)[:3] == ["latent_idx", "hook_action", "refuse_id"]
    csv_back = read_steering_csv(tmp_path / "c.csv", layer=7)
    assert csv_back.rows == cfg.rows and csv_back.mode == "refusal_clamp"
    gated = gated_clamp(9, [3, 5], [12.5, 40.0], -1000.0)
    write_steering_csv(gated, tmp_path / "g.csv")
    gated_back = read_steering_csv(tmp_path / "g.csv", layer=9)
    assert gated_back.rows == gated.rows and gated_back.mode == "gated_clamp"
    assert pd.read_csv(tmp_path / "g.csv")["clamp_value"].tolist() == [12.5, 40.0]


def test_malformed_csv_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("latent_idx,hook_action\n1,clamp\n")
    with pytest.raises(ValueError, match="lacks steering CSV columns"):
        read_steering_csv(path, 0)
    path.write_text(
        "latent_idx,hook_action,refuse_id,clamp_value,steering_coefficient,sae_id,"
        "sae_release,description\n1,explode,,1,0,,,\n"
    )
    with pytest.raises(ValueError, match="hook_action='explode'"):
        read_steering_csv(path, 0)


def test_clamp_config_stage_builds_gated_rows_from_the_selection():
    import typer

    from pipeline.clamp_config import build_clamp_config

    selected = pd.DataFrame({"rank": [2, 1], "latent": [7, 3], "threshold": [40.0, 12.5]})
    cfg = build_clamp_config(selected, "gated_clamp", 9, -1000.0, 0.05, -1)
    assert [(r.latent_idx, r.hook_action, r.clamp_value) for r in cfg.rows] == [
        (3, "clamp_gated", 12.5),
        (7, "clamp_gated", 40.0),
    ]
    assert {r.steering_coefficient for r in cfg.rows} == {-1000.0}
    with pytest.raises(typer.BadParameter, match="select.threshold_rate"):
        build_clamp_config(selected.drop(columns="threshold"), "gated_clamp", 9, -1.0, 0.0, -1)
