"""The `ray` engine on a local Ray with 2 CPUs writes exactly what the `local` engine writes,
and a rerun replaces its shards instead of adding to them. Skipped where Ray is not installed
(`pip install "sae-unlearn[ray]"`; `make test` installs it)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.activations.cache import CacheConfig, cache_corpus
from sae_unlearn.activations.read import iter_activations, read_tokens
from tests.activations.samples import TEXTS

ray = pytest.importorskip("ray")
from sae_unlearn.activations.ray_engine import RayConfig, cache_corpus_ray  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray start and model actors: 30 to 60 s in all

CORPUS = TEXTS * 4
CFG = CacheConfig(layers=(0, 1), seq_len=16, batch_size=4, max_tokens=10_000, shard_batches=8)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (the engine reuses a running Ray)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def ray_inputs(tiny_model, tmp_path):
    """The corpus file and model folder the actors read (they load the model themselves)."""
    model, tokenizer = tiny_model
    corpus = tmp_path / "forget_corpus.parquet"
    pd.DataFrame({"text": CORPUS}).to_parquet(corpus)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return corpus, model_dir


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def sorted_rows(folder):
    tokens = read_tokens(folder).to_pandas()
    acts = torch.cat([a for a, _ in iter_activations(folder, 1, include_special=True)])
    order = tokens.sort_values(["sequence_id", "position"], kind="stable").index.to_numpy().copy()
    return tokens.iloc[order].reset_index(drop=True), acts[order]


def test_ray_writes_what_local_writes_and_reruns_replace(local_ray, tiny_model, tmp_path):
    model, tokenizer = tiny_model
    corpus, model_dir = ray_inputs(tiny_model, tmp_path)
    local = tmp_path / "local"
    cache_corpus(model, tokenizer, CORPUS, "forget", CFG, local, progress=False)
    out = tmp_path / "ray"
    two = RayConfig(workers=2)
    cache_corpus_ray(model_dir, corpus, "forget", CFG, out, two, progress=False)
    assert len(json.loads((out / "manifest.json").read_text())["shards"]) == 4
    # The same values, sequence ids and order after sorting by sequence id...
    local_tokens, local_acts = sorted_rows(local)
    ray_tokens, ray_acts = sorted_rows(out)
    pd.testing.assert_frame_equal(local_tokens, ray_tokens)
    assert torch.equal(local_acts, ray_acts)
    # ...and in fact the same bytes, shard for shard and in the manifest.
    assert files(out) == files(local)
    # A rerun with bigger shards replaces the folder: no shard of the first run is left.
    bigger = CacheConfig(**{**CFG.__dict__, "shard_batches": 16})
    cache_corpus_ray(model_dir, corpus, "forget", bigger, out, two, progress=False)
    assert sorted(files(out)) == ["manifest.json", "shard-00000.parquet", "shard-00001.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["forget_corpus.parquet", "local", "model", "ray"]


def test_the_stage_runs_the_ray_engine(local_ray, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for role in ("forget", "retain"):
        (tmp_path / "prepared" / "corpora").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"text": CORPUS}).to_parquet(f"prepared/corpora/{role}_corpus.parquet")
    params = {
        "model": {"dir": str(tiny_model_dir)},
        "data": {"dir": "prepared"},
        "cache": {"layers": [1], "seq_len": 16, "max_tokens": 10_000, "dir": "cache"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "--engine", "ray", "--max-tokens", "64"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    ray_files = {c: files(tmp_path / "cache" / c) for c in ("forget", "retain")}
    assert json.loads((tmp_path / "cache/forget/manifest.json").read_text())["n_rows"] == 64
    result = runner.invoke(app, ["cache", "--engine", "local", "--max-tokens", "64"])
    assert result.exit_code == 0, result.output
    assert ray_files == {c: files(tmp_path / "cache" / c) for c in ("forget", "retain")}


def test_a_failed_ray_run_leaves_the_previous_cache(local_ray, tiny_model, tmp_path):
    model, tokenizer = tiny_model
    corpus, model_dir = ray_inputs(tiny_model, tmp_path)
    out = tmp_path / "forget"
    cache_corpus(model, tokenizer, CORPUS, "forget", CFG, out, progress=False)
    before = files(out)
    # The actors fail as they start (a dtype load_model refuses), after the folder was begun.
    with pytest.raises(Exception, match="model.dtype='float8' is not supported"):
        cache_corpus_ray(
            model_dir, corpus, "forget", CFG, out, RayConfig(), model_dtype="float8", progress=False
        )
    assert files(out) == before
    assert sorted(os.listdir(tmp_path)) == ["forget", "forget_corpus.parquet", "model"]


def test_ray_actors_upload_to_the_store_what_local_uploads(local_ray, tiny_model, tmp_path):
    model, tokenizer = tiny_model
    corpus, model_dir = ray_inputs(tiny_model, tmp_path)
    cfg = CacheConfig(**{**CFG.__dict__, "shards_url": f"file://{tmp_path}/bucket"})
    cache_corpus(model, tokenizer, CORPUS, "forget", cfg, tmp_path / "local", progress=False)
    local_objects = files(tmp_path / "bucket" / "forget")
    assert len(local_objects) == 4
    two = RayConfig(workers=2)
    cache_corpus_ray(model_dir, corpus, "forget", cfg, tmp_path / "ray", two, progress=False)
    assert files(tmp_path / "ray") == files(tmp_path / "local")  # the manifest alone
    assert files(tmp_path / "bucket" / "forget") == local_objects  # nothing added
