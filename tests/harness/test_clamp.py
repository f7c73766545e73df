"""The clamp a harness run attaches: a clamp YAML, or a paper steering CSV at the layer
given or the one the SAE's hook name records."""

from __future__ import annotations

import json

import pytest

from sae_unlearn.errors import UserError
from sae_unlearn.harness.clamp import read_clamp_file
from sae_unlearn.steering import clamp_prime, write_clamp_yaml, write_steering_csv
from tests.evaluation.helpers import tiny_sae


@pytest.fixture
def sae_dir(tmp_path):
    tiny_sae().save_model(tmp_path / "sae")
    return tmp_path / "sae"


def set_hook_name(sae_dir, hook_name: str) -> None:
    cfg_path = sae_dir / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("metadata", {})["hook_name"] = hook_name
    cfg_path.write_text(json.dumps(cfg))


def test_yaml_keeps_its_layer_and_refuses_another(tmp_path, sae_dir):
    write_clamp_yaml(clamp_prime(1, [0, 2], -20.0), tmp_path / "clamp.yaml")
    cfg = read_clamp_file(sae_dir, tmp_path / "clamp.yaml")
    assert (cfg.layer, cfg.latents) == (1, [0, 2])
    with pytest.raises(UserError, match="layer=0, but .* clamps layer 1"):
        read_clamp_file(sae_dir, tmp_path / "clamp.yaml", layer=0)


def test_csv_takes_the_layer_of_the_sae_hook_name(tmp_path, sae_dir):
    write_steering_csv(clamp_prime(1, [4, 6], -30.0), tmp_path / "steering.csv")
    set_hook_name(sae_dir, "blocks.3.hook_resid_post")
    cfg = read_clamp_file(sae_dir, tmp_path / "steering.csv")
    assert (cfg.layer, cfg.latents) == (3, [4, 6])
    assert read_clamp_file(sae_dir, tmp_path / "steering.csv", layer=1).layer == 1


def test_csv_without_a_layer_anywhere_asks_for_one(tmp_path, sae_dir):
    write_steering_csv(clamp_prime(1, [4], -30.0), tmp_path / "steering.csv")
    set_hook_name(sae_dir, "")
    with pytest.raises(UserError, match="add layer=N to model_args"):
        read_clamp_file(sae_dir, tmp_path / "steering.csv")
