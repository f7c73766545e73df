import pandas as pd
import pytest

from sae_unlearn.steering import (
    gated_clamp,
    read_clamp_yaml,
    read_steering_csv,
    refusal_clamp,
    write_clamp_yaml,
    write_steering_csv,
)


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
