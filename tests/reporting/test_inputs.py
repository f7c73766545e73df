"""Reading the report's inputs, each optional, and the stages' own run times."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sae_unlearn.reporting.inputs import (
    ReportInputError,
    ReportInputs,
    find_seconds,
    load_inputs,
    param,
    primary_metric,
    stage_timings,
)


def test_find_seconds_reads_nested_timings():
    data = {"forget": {"seconds": 2.5, "tokens_per_second": 9.0}, "train_seconds": 1, "x": True}
    assert find_seconds(data) == {"forget.seconds": 2.5, "train_seconds": 1.0}


def test_load_inputs_reads_what_exists(tmp_path: Path):
    (tmp_path / "steered.json").write_text(json.dumps({"forget": {"acc": 0.3}}))
    pd.DataFrame({"latent": [4], "rank": [1]}).to_parquet(tmp_path / "selected.parquet")
    pd.DataFrame({"step": [0, 0], "model": ["baseline", "steered"], "loss": [1.0, 2.0]}).to_csv(
        tmp_path / "gcg_loss.csv", index=False
    )
    paths = {
        "steered": tmp_path / "steered.json",
        "baseline": tmp_path / "missing.json",
        "selected": tmp_path / "selected.parquet",
        "gcg_loss": tmp_path / "gcg_loss.csv",
    }
    inputs = load_inputs(paths, {"model": {"name": "m"}}, {"cache": {}})
    assert inputs.steered == {"forget": {"acc": 0.3}} and inputs.baseline is None
    assert inputs.selected["latent"].tolist() == [4]
    assert inputs.gcg_loss["loss"].tolist() == [1.0, 2.0]
    assert inputs.params == {"model": {"name": "m"}} and inputs.timings == {"cache": {}}
    assert inputs.sources["baseline"] == str(tmp_path / "missing.json")
    assert load_inputs({}, {}).params is None


def test_load_inputs_names_the_unreadable_file(tmp_path: Path):
    (tmp_path / "sae.json").write_text("{oops")
    with pytest.raises(ReportInputError, match="sae.json is not valid JSON"):
        load_inputs({"sae": tmp_path / "sae.json"})
    pd.DataFrame({"step": [0]}).to_csv(tmp_path / "gcg_loss.csv", index=False)
    with pytest.raises(ReportInputError, match=r"lacks columns \['loss', 'model'\]"):
        load_inputs({"gcg_loss": tmp_path / "gcg_loss.csv"})


def test_param_and_primary_metric():
    params = {"evaluate": {"primary_metric": "acc_norm"}, "a": 1}
    assert param(params, "evaluate.primary_metric") == "acc_norm"
    assert param(params, "a.b", "d") == "d" and param(None, "x") is None
    assert primary_metric(ReportInputs(params=params)) == "acc_norm"
    steered = {"primary_metric": "acc"}
    assert primary_metric(ReportInputs(params=params, steered=steered)) == "acc"
    assert primary_metric(ReportInputs()) == "acc"


def test_stage_timings_reads_json_outs_and_json_inside_out_dirs(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/summary.json").write_text(json.dumps({"run_seconds": 3.25}))
    (tmp_path / "out/broken.json").write_text("{")
    (tmp_path / "out/table.parquet").write_text("not json")
    (tmp_path / "m.json").write_text(json.dumps({"a": {"seconds": 1}, "b": {"seconds": 2}}))
    files = {
        "score": [str(tmp_path / "out")],
        "cache": [str(tmp_path / "m.json"), str(tmp_path / "none.json")],
        "prepare": [],
    }
    assert stage_timings(files) == {
        "score": {"summary.json:run_seconds": 3.25},
        "cache": {"m.json:a.seconds": 1.0, "m.json:b.seconds": 2.0},
        "prepare": {},
    }
