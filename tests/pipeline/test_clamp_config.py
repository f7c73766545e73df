import pandas as pd
import pytest


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
