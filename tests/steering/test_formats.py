import pandas as pd
import pytest
import yaml

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


def test_gates_round_trip_through_yaml_and_old_yamls_read_as_latched(tmp_path):
    from sae_unlearn.steering import Gate

    for gate in (Gate(), Gate("window", window=16), Gate("token_share", tau=0.0375)):
        cfg = gated_clamp(9, [3, 5], [12.5, 40.0], -1000.0, gate=gate)
        write_clamp_yaml(cfg, tmp_path / "g.yaml")
        back = read_clamp_yaml(tmp_path / "g.yaml")
        assert back.gate == gate and back.rows == cfg.rows
    data = yaml.safe_load((tmp_path / "g.yaml").read_text())
    assert data.pop("gate") == {"kind": "token_share", "tau": 0.0375}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))  # as written before gate kinds
    assert read_clamp_yaml(tmp_path / "old.yaml").gate == Gate()
    # A clamp_prime config has no gate to write.
    write_clamp_yaml(refusal_clamp(7, [1], 2, 0.05, -5.0), tmp_path / "r.yaml")
    assert "gate" not in (tmp_path / "r.yaml").read_text()


def test_bad_gates_refused_with_the_fix(tmp_path):
    from sae_unlearn.steering import Gate

    cases = [
        (Gate("window", window=0), "window of at least 1 token"),
        (Gate("window"), "window of at least 1 token"),
        (Gate("token_share"), "needs tau"),
        (Gate("token_share", tau=1.0), "0 <= tau < 1, got tau=1.0"),
        (Gate("token_share", tau=-0.1), "0 <= tau < 1"),
        (
            Gate("sliding"),
            r"gate kind 'sliding'; use one of \['latched', 'window', 'token_share'\]",
        ),
    ]
    for gate, message in cases:
        with pytest.raises(ValueError, match=message):
            gated_clamp(9, [3], [1.0], -1.0, gate=gate)
    path = tmp_path / "bad.yaml"
    write_clamp_yaml(gated_clamp(9, [3], [1.0], -1.0), path)
    path.write_text(path.read_text().replace("kind: latched", "kind: window\n  window: -2"))
    with pytest.raises(ValueError, match=f"window gate in {path} needs a window"):
        read_clamp_yaml(path)
    path.write_text(path.read_text().replace("window: -2", "size: 3"))
    with pytest.raises(ValueError, match="expected a mapping with `kind`"):
        read_clamp_yaml(path)
    # The paper's CSV has no gate column: a non-latched gate is refused, not dropped.
    share = gated_clamp(9, [3], [1.0], -1.0, gate=Gate("token_share", tau=0.1))
    with pytest.raises(ValueError, match="steering CSV cannot carry the token_share gate"):
        write_steering_csv(share, tmp_path / "share.csv")
