from __future__ import annotations

import pytest

from sae_unlearn.models import load_model
from tests.tiny import save_tiny_model


@pytest.fixture(autouse=True, scope="session")
def timings_outside_the_working_tree(tmp_path_factory):
    """Stage run times go to a temporary file, not the repo's logs/timings.json (which
    `make bench` and README read); subprocesses inherit it through the environment."""
    import os

    path = tmp_path_factory.mktemp("logs") / "timings.json"
    old = os.environ.get("SAE_UNLEARN_TIMINGS")
    os.environ["SAE_UNLEARN_TIMINGS"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SAE_UNLEARN_TIMINGS")
    else:
        os.environ["SAE_UNLEARN_TIMINGS"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_gemma3") / "model", arch="gemma3")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_gemma2") / "model", arch="gemma2")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu")
