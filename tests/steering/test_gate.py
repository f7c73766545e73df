import torch

from sae_unlearn.steering import (
    ClampHook,
    clamp_prime,
    gate_open,
    gated_clamp,
)
from tests.tiny import random_sae


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
