import pandas as pd
import pytest

from sae_unlearn.steering import from_selection


def test_gated_rows_from_the_selection_in_rank_order():
    selected = pd.DataFrame({"rank": [2, 1], "latent": [7, 3], "threshold": [40.0, 12.5]})
    cfg = from_selection(selected, "gated_clamp", 9, -1000.0)
    assert [(r.latent_idx, r.hook_action, r.clamp_value) for r in cfg.rows] == [
        (3, "clamp_gated", 12.5),
        (7, "clamp_gated", 40.0),
    ]
    assert {r.steering_coefficient for r in cfg.rows} == {-1000.0}
    assert cfg.layer == 9 and cfg.mode == "gated_clamp"


def test_clamp_prime_and_refusal_rows():
    selected = pd.DataFrame({"rank": [1, 2], "latent": [5, 1]})
    prime = from_selection(selected, "clamp_prime", 3, -300.0)
    # The authors' Clamp Prime rows: the value in steering_coefficient, no threshold.
    assert [(r.latent_idx, r.hook_action, r.steering_coefficient) for r in prime.rows] == [
        (5, "clamp", -300.0),
        (1, "clamp", -300.0),
    ]
    assert {(r.refuse_id, r.clamp_value) for r in prime.rows} == {(None, 0.0)}
    refusal = from_selection(selected, "refusal_clamp", 3, -500.0, 0.05, refusal_latent=42)
    assert {(r.refuse_id, r.clamp_value, r.steering_coefficient) for r in refusal.rows} == {
        (42, 0.05, -500.0)
    }


def test_bad_selection_or_mode_refused_with_the_fix():
    selected = pd.DataFrame({"rank": [1], "latent": [3]})
    with pytest.raises(ValueError, match="select.threshold_rate"):
        from_selection(selected, "gated_clamp", 9, -1.0)
    with pytest.raises(ValueError, match="use one of"):
        from_selection(selected, "clamp_everything", 9, -1.0)
    with pytest.raises(ValueError, match="sae-unlearn select"):
        from_selection(pd.DataFrame({"rank": [1]}), "clamp_prime", 9, -1.0)
    with pytest.raises(ValueError, match="refusal latent"):
        from_selection(selected, "refusal_clamp", 9, -1.0)


def test_the_gate_goes_into_the_gated_config():
    from sae_unlearn.steering import Gate

    selected = pd.DataFrame({"rank": [1], "latent": [3], "threshold": [2.0]})
    cfg = from_selection(selected, "gated_clamp", 9, -1.0, gate=Gate("window", window=5))
    assert cfg.gate == Gate("window", window=5)
    assert from_selection(selected, "gated_clamp", 9, -1.0).gate == Gate()
