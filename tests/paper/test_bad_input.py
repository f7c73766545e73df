"""Bad input on the paper's path, offline: each refused with what was asked, what exists and
the fix, as one UserError (the command line prints it without a traceback, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.data.sources import load_questions
from sae_unlearn.errors import UserError
from sae_unlearn.saes.config import SAESourceConfig
from sae_unlearn.saes.io import load_sae
from tests.paper.conftest import GEMMA2, point_at
from tests.paper.test_loaders import GEMMA_SCOPE


def pretrained(release: str, sae_id: str) -> SAESourceConfig:
    return SAESourceConfig(source="pretrained", release=release, sae_id=sae_id)


def refused(result) -> str:
    """The CLI's output of a clean refusal, unwrapped (typer boxes it at the terminal width)."""
    out = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    return out


def test_a_release_sae_lens_does_not_know(offline_hub):
    with pytest.raises(UserError) as info:
        load_sae(pretrained("gemma-scope-2b-pt-res-canonicl", GEMMA_SCOPE.sae_id))
    message = str(info.value)
    assert "sae.release='gemma-scope-2b-pt-res-canonicl'" in message
    assert "knows no such release" in message
    assert "the closest: gemma-scope-2b-pt-res-canonical," in message
    assert "Fix:" in message and "sae.source=path" in message


def test_an_sae_id_the_release_does_not_have(offline_hub):
    with pytest.raises(UserError) as info:
        load_sae(pretrained(GEMMA_SCOPE.release, "layer_7/width_16k/canonicl"))
    message = str(info.value)
    assert "has no such SAE" in message and "closest: layer_7/width_16k/canonical," in message
    assert "Fix: set sae.sae_id" in message


def test_an_sae_neither_cached_nor_reachable(empty_hub):
    with pytest.raises(UserError) as info:
        load_sae(GEMMA_SCOPE)
    message = str(info.value)
    assert GEMMA_SCOPE.release in message and "not in the Hugging Face cache" in message
    assert "run once with network access" in message


def test_an_mmlu_subject_that_does_not_exist(offline_hub):
    with pytest.raises(UserError) as info:
        load_questions("mmlu", "retain", mmlu_subjects=["human_aging", "high_school_us_histroy"])
    message = str(info.value)
    assert "'high_school_us_histroy'" in message and "57 subjects" in message
    assert "did you mean high_school_us_history" in message and "Fix:" in message


def test_an_mmlu_subject_missing_from_the_cache_names_the_cached_ones(offline_hub):
    """A real subject that was never cached: `datasets` names the configs it has."""
    with pytest.raises(UserError) as info:
        load_questions("mmlu", "retain", mmlu_subjects=["virology"])
    message = str(info.value)
    assert "cais/mmlu (config virology" in message and "Available configs" in message
    assert "college_biology" in message


def test_wmdp_without_network_and_without_a_cache_through_prepare_data(
    empty_hub, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    params = {"data": {"dir": "prepared", "forget_questions": "wmdp-bio"}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    out = refused(CliRunner().invoke(app, ["prepare-data"]))
    assert "cais/wmdp (config wmdp-bio, split test)" in out
    assert "cannot be reached and no copy is cached" in out
    assert "HF_HUB_OFFLINE unset" in out and "local file" in out
    assert not Path("prepared").exists()


@pytest.fixture(scope="module")
def gemma2_cache(hub_home, tmp_path_factory):
    """prepare-model (google/gemma-2-2b from the cache), prepare-data and cache of layer 7,
    through the command line, in a project of its own."""
    root = tmp_path_factory.mktemp("paper_project")
    params = {
        "model": {"name": GEMMA2, "dir": "model"},
        "data": {"dir": "prepared", "max_documents": 2, "retain_near_corpus": "none"},
        "cache": {"layers": [7], "seq_len": 16, "max_tokens": 64, "dir": "cache"},
        "sae": {"layer": 7, "dir": "sae", "source": "pretrained"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, hub_home)
        mp.chdir(root)
        for stage in ("prepare-model", "prepare-data", "cache"):
            result = CliRunner().invoke(app, [stage])
            assert result.exit_code == 0, result.output
    return root


def test_an_sae_of_another_width_is_refused_by_train_sae(gemma2_cache, offline_hub, monkeypatch):
    monkeypatch.chdir(gemma2_cache)
    args = ["train-sae", "--release", "gemma-scope-2-270m-pt-res"]
    out = refused(CliRunner().invoke(app, [*args, "--sae-id", "layer_9_width_16k_l0_medium"]))
    assert "reads 640-dimensional activations" in out and "hidden size is 2304" in out
    assert "gemma-scope-2-270m-pt-res" in out and "sae.release/sae.sae_id/sae.path" in out
    assert not (gemma2_cache / "sae").exists()


def test_a_hook_layer_beyond_the_model_is_refused_by_cache(gemma2_cache, offline_hub, monkeypatch):
    monkeypatch.chdir(gemma2_cache)
    out = refused(CliRunner().invoke(app, ["cache", "--layer", "12", "--out-dir", "cache12"]))
    assert "12" in out and "the model has 8 decoder layers (valid: 0..7)" in out
    assert not (gemma2_cache / "cache12").exists()


def test_a_model_neither_cached_nor_reachable_through_prepare_model(
    empty_hub, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"model": {"name": GEMMA2, "dir": "model"}}))
    out = refused(CliRunner().invoke(app, ["prepare-model"]))
    assert f"model.name='{GEMMA2}': transformers cannot load it" in out
    assert "couldn't find them in the cached files" in out
    assert "hf auth login" in out and "local model directory" in out
    assert not Path("model").exists()
