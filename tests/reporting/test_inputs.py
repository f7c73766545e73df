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
    (tmp_path / "losses.json").write_text(json.dumps({"baseline": [1.0, 0.5], "steered": [2.0]}))
    gcg = {"steered": {"suffix": {"acc": 0.3}}, "n": 68}
    (tmp_path / "attack_gcg.json").write_text(json.dumps(gcg))
    samples = {"steered": [{"question": "q", "plain": {"continuation": "c"}}]}
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    paths = {
        "steered": tmp_path / "steered.json",
        "baseline": tmp_path / "missing.json",
        "selected": tmp_path / "selected.parquet",
        "gcg_losses": tmp_path / "losses.json",
        "gcg_suffixes": tmp_path / "missing_suffixes.json",
        "samples": tmp_path / "samples.json",
        "attack_gcg": tmp_path / "attack_gcg.json",
        "attack_icl": tmp_path / "attack_icl.json",  # missing
    }
    inputs = load_inputs(paths, {"model": {"name": "m"}})
    assert inputs.steered == {"forget": {"acc": 0.3}} and inputs.baseline is None
    assert inputs.selected["latent"].tolist() == [4]
    assert inputs.gcg_losses == {"baseline": [1.0, 0.5], "steered": [2.0]}
    assert inputs.gcg_suffixes is None and inputs.samples == samples
    assert inputs.attack_families == {"gcg": gcg}  # by family; the missing icl left out
    assert inputs.params == {"model": {"name": "m"}}
    assert inputs.sources["baseline"] == str(tmp_path / "missing.json")
    assert load_inputs({}, {}).params is None


def test_load_inputs_names_the_unreadable_file(tmp_path: Path):
    (tmp_path / "sae.json").write_text("{oops")
    with pytest.raises(ReportInputError, match="sae.json is not valid JSON"):
        load_inputs({"sae": tmp_path / "sae.json"})
    (tmp_path / "attack_gcg.json").write_text('{"steered": ')
    with pytest.raises(ReportInputError, match="attack_gcg.json is not valid JSON"):
        load_inputs({"attack_gcg": tmp_path / "attack_gcg.json"})
    (tmp_path / "gcg_loss.csv").write_text("step,model,loss\n")
    with pytest.raises(ValueError, match="unknown report input 'gcg_loss'"):
        load_inputs({"gcg_loss": tmp_path / "gcg_loss.csv"})


def test_param_and_primary_metric():
    params = {"evaluate": {"primary_metric": "acc_norm"}, "a": 1}
    assert param(params, "evaluate.primary_metric") == "acc_norm"
    assert param(params, "a.b", "d") == "d" and param(None, "x") is None
    assert primary_metric(ReportInputs(params=params)) == "acc_norm"
    steered = {"primary_metric": "acc"}
    assert primary_metric(ReportInputs(params=params, steered=steered)) == "acc"
    assert primary_metric(ReportInputs()) == "acc"
