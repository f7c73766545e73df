"""Training on a cache bigger than memory: the streamed split holds out what the in-memory
split holds out, an epoch of the shuffle buffer gives every training token once, the stream
is seeded, and the train-sae stage streams once the caches exceed `sae.train.memory_tokens`."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.activations.read import read_layer_with_sequences
from sae_unlearn.errors import UserError
from sae_unlearn.saes.config import SAETrainConfig
from sae_unlearn.saes.quality import split_held_out
from sae_unlearn.saes.stream import CacheStream, split_sequences
from tests.saes.test_from_cache import write_params


def corpus_paths(cache_dir):
    return [cache_dir / "forget", cache_dir / "retain"]


def test_the_streamed_split_holds_out_what_the_in_memory_split_does(tiny_cache):
    paths = corpus_paths(tiny_cache)
    parts = [read_layer_with_sequences(path, 1, progress=False) for path in paths]
    train, held, split = split_held_out(parts, 0.25, 3)
    stream = CacheStream(split_sequences(paths, 0.25, 3), 1)
    assert split == "held_out" and stream.has_held_out
    assert torch.equal(torch.cat(list(stream.in_order(held_out=True))), held)
    assert torch.equal(torch.cat(list(stream.in_order(held_out=False))), train)
    n, mean = stream.count_and_mean()
    assert n == len(train) and torch.allclose(mean, train.double().mean(0))
    # nothing held out: both sides are every token, as the in-memory split reports "train"
    everything = CacheStream(split_sequences(paths, 0.0, 3), 1)
    all_tokens = torch.cat([acts for acts, _ in parts])
    assert torch.equal(torch.cat(list(everything.in_order(held_out=True))), all_tokens)


def rows(tensor):
    return Counter(row.numpy().tobytes() for row in tensor)


def test_an_epoch_gives_every_training_token_once(tiny_cache):
    stream = CacheStream(split_sequences(corpus_paths(tiny_cache), 0.25, 0), 1)
    train = torch.cat(list(stream.in_order()))
    batch = 50
    batches = stream.shuffled(batch, seed=0, memory_tokens=200)  # smaller than one corpus
    epoch = torch.cat([next(batches) for _ in range(len(train) // batch)])
    assert all(len(b) == batch for b in epoch.split(batch))
    assert len(epoch) == len(train) - len(train) % batch
    assert not rows(epoch) - rows(train)  # each token given at most as often as it exists
    assert not torch.equal(epoch, train[: len(epoch)])  # shuffled


def test_the_stream_is_seeded(tiny_cache):
    stream = CacheStream(split_sequences(corpus_paths(tiny_cache), 0.25, 0), 1)

    def first(seed):
        batches = stream.shuffled(64, seed, memory_tokens=256)
        return torch.cat([next(batches) for _ in range(12)])  # past the first epoch

    assert torch.equal(first(1), first(1))
    assert not torch.equal(first(1), first(2))


def test_a_buffer_under_two_batches_is_refused():
    with pytest.raises(UserError, match="memory_tokens=100 is below two batches.*raise"):
        SAETrainConfig(batch_size=64, memory_tokens=100)


def test_the_stage_streams_a_cache_bigger_than_memory(tmp_path, tiny_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage's timings go to tmp_path/logs
    runner = CliRunner()
    metrics = {}
    for name, memory_tokens in (("memory", 1_000_000), ("stream", 256)):
        (tmp_path / name).mkdir()
        params = write_params(tmp_path / name, tiny_cache)
        text = params.read_text().replace(
            "dead_steps: 10", f"dead_steps: 10\n    memory_tokens: {memory_tokens}"
        )
        params.write_text(text)
        result = runner.invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        metrics[name] = json.loads((tmp_path / name / "metrics" / "sae.json").read_text())
    memory, stream = metrics["memory"], metrics["stream"]
    assert stream["streamed_memory_tokens"] == 256 and "streamed_memory_tokens" not in memory
    for key in ("n_tokens", "n_train_tokens", "eval_split", "d_sae"):
        assert stream[key] == memory[key]  # the same split, evaluated on the same tokens
    assert stream["explained_variance"] > 0.3 and 2 <= stream["l0"] <= 6
