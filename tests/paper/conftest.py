"""The paper's hub repos as an offline Hugging Face cache (tests/paper/hub.py), once a session.

`hub_home` is the `HF_HOME` a subprocess gets through `offline_env`; `offline_hub` points this
process at it. The libraries read `HF_HOME`, `HF_HUB_OFFLINE` and the datasets cache once, at
import, into module constants, so in this process the fixture sets those constants (what the
environment variables would have set); subprocesses get the variables themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sae_unlearn.data.sources import MMLU_BIO_SUBJECTS, PAPER_MMLU_SUBJECTS
from tests.paper import hub

GEMMA2 = "google/gemma-2-2b"
GEMMA3 = "google/gemma-3-270m"


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    tmp = tmp_path_factory.mktemp("hf_staging")
    hub_cache, datasets_cache = home / "hub", home / "datasets"
    hub.add_gemma_scope(hub_cache, tmp)
    hub.add_gemma_scope_2(hub_cache, tmp)
    hub.add_tiny_model(hub_cache, tmp, GEMMA2, "gemma2", hidden=2304, layers=8)
    hub.add_tiny_model(hub_cache, tmp, GEMMA3, "gemma3", hidden=640, layers=10)
    subjects = [*PAPER_MMLU_SUBJECTS, *MMLU_BIO_SUBJECTS]
    for repo_id, configs in hub.dataset_rows(subjects).items():
        hub.add_dataset(hub_cache, datasets_cache, tmp, repo_id, configs)
    return home


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a user with no network and `home` as their Hugging Face cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    return {
        **env,
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def point_at(monkeypatch, home: Path) -> None:
    """Set the constants `HF_HOME` and `HF_HUB_OFFLINE=1` set at import."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def offline_hub(hub_home, monkeypatch) -> Path:
    point_at(monkeypatch, hub_home)
    return hub_home


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    """No network and nothing cached."""
    point_at(monkeypatch, tmp_path / "hf_home")
    return tmp_path / "hf_home"
