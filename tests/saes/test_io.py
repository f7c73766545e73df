"""SAE directories: atomic save, sae-lens round trip, refused pickles, width and layer checks."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from sae_lens import SAE, JumpReLUSAE, StandardSAE, StandardSAEConfig

from sae_unlearn.saes.config import SAESourceConfig
from sae_unlearn.saes.io import (
    check_sae_matches_model,
    check_sae_width,
    load_sae,
    save_sae,
    warn_if_other_layer,
)
from tests.saes.samples import D, gemma_scope_like


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


def test_d_in_mismatch_names_file_and_fix():
    with pytest.raises(ValueError) as err:
        check_sae_matches_model(gemma_scope_like(d_in=D), 640, "data/sae/gemma-scope")
    message = str(err.value)
    assert "data/sae/gemma-scope" in message
    assert f"reads {D}-dimensional" in message and "hidden size is 640" in message
    assert "sae.source" in message
    check_sae_matches_model(gemma_scope_like(d_in=D), D, "ok")


def test_warn_if_other_layer_names_the_hook():
    sae = gemma_scope_like()
    sae.cfg.metadata.hook_name = "blocks.7.hook_resid_post"
    with pytest.warns(UserWarning, match="from here was trained on blocks.7.hook_resid_post"):
        warn_if_other_layer(sae, 3, "here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_other_layer(sae, 7, "here")


def test_check_sae_width_says_where_each_width_comes_from():
    sae = gemma_scope_like(d_in=D)
    with pytest.raises(ValueError) as err:
        check_sae_width(sae, 32, found="c.parquet holds 32-dimensional ones", advice="rerun")
    assert str(err.value) == (
        f"the SAE reads {D}-dimensional activations but c.parquet holds 32-dimensional ones; rerun"
    )
    with pytest.raises(ValueError) as err:
        check_sae_matches_model(sae, 640, "x")
    assert str(err.value) == (
        f"the SAE from x reads {D}-dimensional activations but the model's hidden size is 640; "
        "use an SAE trained on this model and layer (set sae.source: train, or "
        "sae.release/sae.sae_id/sae.path to an SAE for this model)"
    )


def test_check_sae_width_message_without_origin():
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    check_sae_width(sae, 16, found="unused", advice="unused")
    with pytest.raises(ValueError) as err:
        check_sae_width(sae, 32, found="x holds 32", advice="fix it")
    assert str(err.value) == "the SAE reads 16-dimensional activations but x holds 32; fix it"


def test_warn_if_other_layer_silent_on_its_own_layer_and_points_at_the_caller():
    sae = SimpleNamespace(cfg=SimpleNamespace(metadata=SimpleNamespace(hook_name="blocks.7.x")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_other_layer(sae, 7)  # its own layer: silent
        warn_if_other_layer(SimpleNamespace(cfg=SimpleNamespace()), 3)  # no hook name: silent
    with pytest.warns(UserWarning, match=r"trained on blocks.7.x, but sae.layer=3") as record:
        warn_if_other_layer(sae, 3, stacklevel=1)
    assert record[0].filename == __file__  # stacklevel 1: the line that called it
