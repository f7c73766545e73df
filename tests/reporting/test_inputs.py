"""Reading the report's inputs, each optional, and the stages' own run times."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sae_unlearn.reporting.inputs import (
    ReportInputError,
    ReportInputs,
    load_inputs,
    param,
    primary_metric,
)


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
    inputs = load_inputs(paths, {"model": {"name": "m"}})
    assert inputs.steered == {"forget": {"acc": 0.3}} and inputs.baseline is None
    assert inputs.selected["latent"].tolist() == [4]
    assert inputs.gcg_loss["loss"].tolist() == [1.0, 2.0]
    assert inputs.params == {"model": {"name": "m"}}
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
