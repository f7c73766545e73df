"""The window and token-share gates: hand-made latents, packed layouts, padding, and the hook
against the oracle (`tests.steering.reference`, written apart from the hook)."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.steering import (
    ClampHook,
    Gate,
    GateLayout,
    gate_carry,
    gate_open,
    gated_clamp,
)
from sae_unlearn.steering.positions import plan, read_forward
from tests.steering.reference import gate_row, reference_edit, reference_steer
from tests.tiny import D_IN, firing_latents, random_sae

WINDOW = Gate("window", window=4)
SHARE = Gate("token_share", tau=0.25)
THRESHOLDS = torch.tensor([5.0, 5.0])


def latents(triggers: list[int], length: int) -> torch.Tensor:
    """`[1, length, 2]` latents: latent 0 at 6 (a trigger) at `triggers`, else latent 1
    firing at 1 (under its threshold) everywhere; BOS fires hard, which must not count."""
    f = torch.zeros(1, length, 2)
    f[0, :, 1] = 1.0
    f[0, 0, 0] = 9.0
    f[0, triggers, 0] = 6.0
    return f


def test_window_gate_closes_w_tokens_after_the_trigger():
    f = latents([3], 3 + 41)  # BOS, two tokens, the trigger, 40 benign tokens
    gate = gate_open(f, THRESHOLDS, gate=WINDOW)[0].tolist()
    assert gate == [False] * 3 + [True] * 4 + [False] * 37
    # A second trigger restarts the window; the latched gate never closes.
    f = latents([3, 5], 20)
    assert (
        gate_open(f, THRESHOLDS, gate=WINDOW)[0].tolist() == [False] * 3 + [True] * 6 + [False] * 11
    )
    assert gate_open(f, THRESHOLDS)[0].tolist() == [False] * 3 + [True] * 17
    assert gate_open(f, THRESHOLDS, gate=Gate("window", window=1))[
        0
    ].nonzero().flatten().tolist() == [3, 5]


def test_token_share_gate_follows_the_running_share():
    # One trigger at index 1 then 40 benign tokens: rho = 1/k at the k-th counted token.
    f = latents([1], 42)
    gate = gate_open(f, THRESHOLDS, gate=SHARE)[0]
    rho = [1 / k for k in range(1, 42)]
    assert gate.tolist() == [False] + [r > 0.25 for r in rho]
    assert gate[1:4].all() and not gate[4:].any()  # 1/3 > 0.25 >= 1/4
    # Triggers on every other token keep rho at 1/2 or above: open throughout, but only
    # trigger positions are clamped.
    f = latents(list(range(1, 20, 2)), 20)
    hook = ClampHook(random_sae("standard"), gated_clamp(0, [3, 7], [5.0, 5.0], -40.0, gate=SHARE))
    assert gate_open(f, THRESHOLDS, gate=SHARE)[0, 1:].all()
    edited = hook.edit(f)
    clamped = (edited == -40.0).any(-1)[0]
    assert clamped.nonzero().flatten().tolist() == list(range(1, 20, 2))
    # Exactly at tau the gate stays shut (rho > tau opens it): rho at indices 1..8 is
    # 1, 1/2, 1/3, 1/4, 2/5, 2/6, 2/7, 2/8.
    at_tau = latents([1, 5], 9)
    assert gate_open(at_tau, THRESHOLDS, gate=SHARE)[0].tolist() == [
        False, True, True, True, False, True, True, True, False,
    ]  # fmt: skip


def test_a_one_position_input_has_no_history():
    fire, calm = torch.tensor([6.0, 0.0]), torch.tensor([1.0, 1.0])
    for gate in (WINDOW, SHARE):
        assert bool(gate_open(fire, THRESHOLDS, gate=gate)) and not gate_open(
            calm, THRESHOLDS, gate=gate
        )


@pytest.mark.parametrize("gate", [WINDOW, SHARE, Gate()], ids=["window", "share", "latched"])
def test_packed_prefix_tree_sees_only_ancestors(gate):
    # Sequences A = BOS x1 x2 a3..a7 and B = BOS x1 x2 b3..b7 share BOS x1 x2, packed into
    # one row: BOS x1 x2 a3 a4 a5 a6 a7 b3 b4 b5 b6 b7, each slot seeing its ancestors.
    triggers_a = [False, True, False, False, False, False, False]  # x2
    triggers_b = [False, True, True, True, False, False, False]  # x2, b3, b4
    parent = [-1, 0, 1, 2, 3, 4, 5, 6, 2, 8, 9, 10, 11]
    positions = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7])
    visible = torch.zeros(13, 13, dtype=torch.bool)
    for q in range(13):
        k = q
        while k >= 0:
            visible[q, k] = True
            k = parent[k]
    fire = [False, *triggers_a, *triggers_b[2:]]
    f = torch.zeros(1, 13, 2)
    f[0, :, 0] = torch.tensor(fire, dtype=torch.float) * 6.0
    f[0, 0, 0] = 9.0  # BOS
    got = gate_open(f, THRESHOLDS, GateLayout(visible, positions), gate=gate)[0].tolist()
    open_a, _ = gate_row(triggers_a, gate)
    open_b, _ = gate_row(triggers_b, gate)
    assert got[0] is False and got[1:8] == open_a and got[1:3] + got[8:] == open_b
    if gate.kind != "latched":  # the branches differ: a gate leaking across them shows
        assert open_a != open_b
    # The shared prefix held in a cache: its tail carries over to the packed branches.
    hook = ClampHook(random_sae("standard"), gated_clamp(0, [3, 7], [5.0, 5.0], -40.0, gate=gate))
    hook.edit(f[:, :3])
    carry = gate_carry([hook])
    layout = GateLayout(visible[3:, 3:], positions[3:], carry)
    assert gate_open(f[:, 3:], THRESHOLDS, layout, gate)[0].tolist() == got[3:]


def test_left_padded_batch_equals_rows_alone():
    sae = random_sae("standard")
    torch.manual_seed(1)
    f = torch.rand(3, 12, 64) * 0.4
    f[0, 4, 29], f[1, 2, 29], f[2, 9, 29] = 2.0, 2.0, 2.0  # triggers
    f[0, 7, 29] = 0.3  # fires under the threshold: clamped where the gate is open
    mask = torch.tensor([[0, 0, 0] + [1] * 9, [1] * 12, [0] * 5 + [1] * 7])
    for gate in (Gate("window", window=3), Gate("token_share", tau=0.1)):
        cfg = gated_clamp(0, [29, 31], [1.0, 1.0], -9.0, gate=gate)
        hook = ClampHook(sae, cfg)
        idx = hook.slice.index
        where = plan(read_forward({"input_ids": mask, "attention_mask": mask}), None, gated=True)
        batched = hook.edit(f[..., idx], where)
        torch.testing.assert_close(batched, reference_edit(f, cfg, mask)[..., idx])
        for b in range(3):
            real = mask[b].bool()
            alone = hook.edit(f[b : b + 1, real][..., idx])
            torch.testing.assert_close(batched[b : b + 1, real], alone)
            torch.testing.assert_close(batched[b, ~real], f[b, ~real][..., idx])
        assert (batched == -9.0).any()


@pytest.mark.parametrize("kind", ["jumprelu", "topk"])
@pytest.mark.parametrize("gate", [Gate("window", window=2), Gate("token_share", tau=0.3)])
def test_hook_equals_full_encode_clamp_decode(kind, gate):
    sae = random_sae(kind).double()
    h = torch.randn(3, 9, D_IN, dtype=torch.float64) * 2
    chosen = firing_latents(sae, h, 5)
    f = sae.encode(h)[..., chosen].detach()
    thresholds = f.flatten(0, 1).quantile(0.8, dim=0).tolist()
    cfg = gated_clamp(0, chosen, thresholds, -30.0, gate=gate)
    with torch.no_grad():
        expected = reference_steer(sae, cfg, h)
        got = ClampHook(sae, cfg)(h)
        latched = reference_steer(sae, gated_clamp(0, chosen, thresholds, -30.0), h)
    assert not torch.allclose(expected, h, atol=1e-3) and not torch.allclose(expected, latched)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
