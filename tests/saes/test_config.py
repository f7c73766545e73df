"""SAE settings: source and training configs refuse bad values and name the setting."""

from __future__ import annotations

import pytest

from sae_unlearn.saes.config import SAESourceConfig, SAETrainConfig


def test_source_config_validation():
    with pytest.raises(ValueError, match="sae.release and sae.sae_id"):
        SAESourceConfig(source="pretrained")
    with pytest.raises(ValueError, match="sae.path"):
        SAESourceConfig(source="path")
    with pytest.raises(ValueError, match="not one of"):
        SAESourceConfig(source="hub")
    with pytest.raises(ValueError, match="unknown sae.train keys"):
        SAETrainConfig.from_dict({"d_sea": 8})
    with pytest.raises(ValueError, match="k=0"):
        SAETrainConfig(k=0)


def test_source_origin_names_where_the_sae_comes_from():
    assert SAESourceConfig().origin == "training"
    assert SAESourceConfig(source="path", path="data/sae/x").origin == "data/sae/x"
    pretrained = SAESourceConfig(source="pretrained", release="gemma-scope", sae_id="layer_7")
    assert pretrained.origin == "release gemma-scope / layer_7"
