"""Model loading: dtypes by name, and only safetensors checkpoints."""

import pytest
import torch

from sae_unlearn.models.loading import load_model, resolve_dtype


def test_resolve_dtype():
    assert resolve_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="model.dtype='int8'"):
        resolve_dtype("int8")


def test_local_dir_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        load_model(str(tmp_path))
