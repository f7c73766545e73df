from __future__ import annotations

import pytest

from sae_unlearn.models import load_model
from tests.tiny import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_gemma3") / "model", arch="gemma3")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_gemma2") / "model", arch="gemma2")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")
