"""SAE concept: training, determinism, save/load, source loading, evaluation, train-sae stage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.train_sae import held_out_mask
from sae_unlearn.activations import CacheConfig, cache_corpus
from sae_unlearn.saes import (
    SAESourceConfig,
    SAETrainConfig,
    check_sae_matches_model,
    evaluate_sae,
    load_sae,
    save_sae,
    train_sae,
)
from tests.tiny import TRAINING_TEXT, tiny_gemma3, tiny_tokenizer

D = 16
# Few, small steps: the file must stay fast on a busy 2-core CPU.
FAST = SAETrainConfig(
    d_sae=64, k=4, lr=3e-3, batch_size=128, training_tokens=128 * 250, dead_steps=20
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a busy 2-core machine OpenMP
    oversubscription makes them ~30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sparse_data() -> torch.Tensor:
    """Sparse non-negative combinations of 32 random unit directions, offset and scaled
    like a residual stream (large mean, large norm) so normalisation matters."""
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(32, D, generator=g)
    directions /= directions.norm(dim=-1, keepdim=True)
    active = torch.rand(2048, 32, generator=g) < 3 / 32
    coefficients = torch.rand(2048, 32, generator=g) * 3 * active
    return (coefficients @ directions) * 100 + 40 * torch.randn(D, generator=g)


@pytest.fixture(scope="module")
def trained(sparse_data) -> SAE:
    return train_sae(sparse_data, FAST)


def test_training_improves_explained_variance(sparse_data, trained):
    untrained = train_sae(sparse_data, replace(FAST, training_tokens=FAST.batch_size, lr=1e-8))
    before = evaluate_sae(untrained, sparse_data)["explained_variance"]
    after = evaluate_sae(trained, sparse_data)
    assert after["explained_variance"] > 0.6
    assert after["explained_variance"] > before + 0.4
    assert after["l0"] <= FAST.k
    assert after["n_tokens"] == len(sparse_data)


def test_training_is_deterministic(sparse_data):
    cfg = replace(FAST, training_tokens=128 * 20)
    first, second = train_sae(sparse_data, cfg), train_sae(sparse_data, cfg)
    other = train_sae(sparse_data, replace(cfg, seed=1))
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.W_enc, other.W_enc)


def test_train_leaves_global_rng_alone(sparse_data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_sae(sparse_data, replace(FAST, training_tokens=128 * 2))
    assert torch.equal(torch.rand(3), expected)


def test_save_load_round_trip(tmp_path, sparse_data, trained):
    out = save_sae(trained, tmp_path / "sae")
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    loaded = SAE.load_from_disk(out)
    assert loaded.cfg.architecture() == "topk"
    x = sparse_data[:256]
    torch.testing.assert_close(loaded.encode(x), trained.encode(x))
    torch.testing.assert_close(loaded(x), trained(x))
    # No temporary siblings are left behind by the atomic write.
    assert [p.name for p in tmp_path.iterdir()] == ["sae"]


@pytest.mark.parametrize("architecture", ["jumprelu", "standard"])
def test_other_architectures_train_and_round_trip(tmp_path, sparse_data, architecture):
    cfg = replace(FAST, architecture=architecture, training_tokens=128 * 10)
    sae = train_sae(sparse_data, cfg)
    assert sae.cfg.architecture() == architecture
    loaded = load_sae(SAESourceConfig(source="path", path=str(save_sae(sae, tmp_path / "s"))))
    torch.testing.assert_close(loaded(sparse_data[:64]), sae(sparse_data[:64]))


def gemma_scope_like(d_in: int = D, d_sae: int = 32) -> JumpReLUSAE:
    """A JumpReLU SAE as Gemma Scope's come through sae-lens: unit-norm decoder rows,
    raw-activation units, a learned threshold per latent."""
    torch.manual_seed(0)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae))
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, d_in), dim=-1))
        sae.b_enc.copy_(torch.randn(d_sae) * 0.1)
        sae.b_dec.copy_(torch.randn(d_in) * 0.1)
        sae.threshold.copy_(torch.rand(d_sae))
    return sae


def test_load_sae_path_reads_gemma_scope_format(tmp_path):
    sae = gemma_scope_like()
    sae.save_model(tmp_path / "layer_7")
    loaded = load_sae(SAESourceConfig(source="path", path=str(tmp_path / "layer_7")))
    assert isinstance(loaded, JumpReLUSAE)
    x = torch.randn(32, D)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))
    torch.testing.assert_close(loaded.threshold, sae.threshold)


def test_load_sae_refuses_pickles_and_explains(tmp_path):
    (tmp_path / "cfg.json").write_text("{}")
    torch.save({"W_enc": torch.zeros(2, 2)}, tmp_path / "sae_weights.pt")
    with pytest.raises(FileNotFoundError, match="pickled weights.*sae_weights.pt"):
        load_sae(SAESourceConfig(source="path", path=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sae(SAESourceConfig(source="path", path=str(tmp_path / "missing")))


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


def test_d_in_mismatch_names_file_and_fix():
    with pytest.raises(ValueError) as err:
        check_sae_matches_model(gemma_scope_like(d_in=D), 640, "data/sae/gemma-scope")
    message = str(err.value)
    assert "data/sae/gemma-scope" in message
    assert f"reads {D}-dimensional" in message and "hidden size is 640" in message
    assert "sae.source" in message
    check_sae_matches_model(gemma_scope_like(d_in=D), D, "ok")


def test_evaluate_sae_hand_built():
    # Latents +e_i and -e_i decode back exactly, so reconstruction is perfect.
    eye = torch.eye(4)
    sae = StandardSAE(StandardSAEConfig(d_in=4, d_sae=8, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    x = torch.rand(100, 4) + 0.5  # positive everywhere: the -e_i latents never fire
    metrics = evaluate_sae(sae, x, batch_size=7)
    assert metrics["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["l0"] == pytest.approx(4.0)
    assert metrics["dead_fraction"] == pytest.approx(0.5)
    assert metrics["n_tokens"] == 100
    # A decoder that always outputs the mean explains exactly none of the variance.
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.b_dec.copy_(x.mean(0))
    assert evaluate_sae(sae, x)["explained_variance"] == pytest.approx(0.0, abs=1e-6)


def test_held_out_mask_splits_whole_sequences():
    sequence_ids = torch.arange(20).repeat_interleave(5)
    mask = held_out_mask(sequence_ids, 0.2, seed=0)
    held = set(sequence_ids[mask].tolist())
    assert len(held) == 4
    assert held.isdisjoint(sequence_ids[~mask].tolist())
    assert torch.equal(mask, held_out_mask(sequence_ids, 0.2, seed=0))
    assert not held_out_mask(sequence_ids, 0.0, seed=0).any()


# --- the train-sae stage, end to end on a tiny cache ------------------------------------


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    cache_dir = tmp_path_factory.mktemp("cache")
    tokenizer = tiny_tokenizer()
    model = tiny_gemma3(len(tokenizer))
    cfg = CacheConfig(layers=(1,), seq_len=32, batch_size=8, max_tokens=32 * 12)
    texts = TRAINING_TEXT * 8
    for corpus in ("forget", "retain"):
        cache_corpus(model, tokenizer, texts, corpus, cfg, cache_dir / f"{corpus}.parquet")
    return cache_dir


def write_params(tmp_path: Path, cache_dir: Path, **sae: object) -> Path:
    params = {
        "seed": 0,
        "cache": {"dir": str(cache_dir)},
        "sae": {
            "layer": 1,
            "source": "train",
            "dir": str(tmp_path / "sae"),
            "metrics": str(tmp_path / "metrics" / "sae.json"),
            "train": {
                "d_sae": 64,
                "k": 4,
                "lr": 0.003,
                "batch_size": 64,
                "training_tokens": 64 * 60,
                "held_out_fraction": 0.25,
                "dead_steps": 10,
            },
            **sae,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_train_sae_stage_end_to_end(tmp_path, tiny_cache):
    runner = CliRunner()
    params = write_params(tmp_path, tiny_cache)
    result = runner.invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((tmp_path / "metrics" / "sae.json").read_text())
    assert metrics["source"] == "train" and metrics["eval_split"] == "held_out"
    assert metrics["architecture"] == "topk" and metrics["d_sae"] == 64 and metrics["layer"] == 1
    assert 0 < metrics["n_tokens"] < metrics["n_train_tokens"]
    assert metrics["l0"] <= 4 and 0 <= metrics["dead_fraction"] <= 1
    assert metrics["explained_variance"] > 0.3
    sae = SAE.load_from_disk(tmp_path / "sae")
    assert sae.cfg.d_in == 32
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"

    # source: path copies that SAE to a new local dir and evaluates it on every cached token.
    params = write_params(
        tmp_path, tiny_cache, source="path", path=str(tmp_path / "sae"), dir=str(tmp_path / "c")
    )
    result = runner.invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    copied = json.loads((tmp_path / "metrics" / "sae.json").read_text())
    assert copied["source"] == "path" and copied["eval_split"] == "all_cached"
    assert copied["n_tokens"] == metrics["n_tokens"] + metrics["n_train_tokens"]
    assert (tmp_path / "c" / "sae_weights.safetensors").is_file()


def test_train_sae_stage_rejects_wrong_width(tmp_path, tiny_cache):
    gemma_scope_like(d_in=D).save_model(tmp_path / "wide")
    params = write_params(tmp_path, tiny_cache, source="path", path=str(tmp_path / "wide"))
    result = CliRunner().invoke(app, ["train-sae", "--params", str(params), "--device", "cpu"])
    assert result.exit_code != 0
    assert "hidden size is 32" in str(result.exception)
    assert str(tmp_path / "wide") in str(result.exception)
    assert not (tmp_path / "sae").exists()
