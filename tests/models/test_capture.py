"""Residual capture: hooks record block outputs exactly, cut forwards short, and clean up."""

import pytest
import torch

from sae_unlearn.models.capture import capture_residuals, run_to_layers
from sae_unlearn.models.layers import decoder_layers
from sae_unlearn.models.loading import load_model


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_gemma2_dir"])
def test_hook_captures_block_output(fixture, request):
    model, tokenizer = load_model(str(request.getfixturevalue(fixture)), device="cpu")
    batch = tokenizer(["Viruses replicate inside host cells."], return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch, output_hidden_states=True).hidden_states
        with capture_residuals(model, [0]) as captured:
            model(**batch)
    # hidden_states[L + 1] is the output of block L (the last one is post-norm, so
    # block 0 of the 2-layer model is the one comparable without the final norm).
    torch.testing.assert_close(captured[0], reference[1], rtol=0, atol=0)


def test_hook_last_layer_is_pre_final_norm(tiny_model):
    model, tokenizer = tiny_model
    batch = tokenizer(["Paris is the capital of France."], return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch, output_hidden_states=True).hidden_states[-1]
        with capture_residuals(model, [1]) as captured:
            model(**batch)
        normed = model.model.norm(captured[1])
    torch.testing.assert_close(normed, reference, rtol=1e-5, atol=1e-5)


def test_run_to_layers_stops_early_with_same_values(tiny_model):
    model, tokenizer = tiny_model
    batch = tokenizer(["A compiler translates source code."], return_tensors="pt")
    calls = []
    handle = decoder_layers(model)[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            full = model(**batch, output_hidden_states=True).hidden_states[1]
            with capture_residuals(model, [0], stop_after_last=True) as captured:
                out = run_to_layers(model, captured, **batch)
    finally:
        handle.remove()
    assert calls == [1]  # only the full forward reached block 1
    torch.testing.assert_close(out[0], full, rtol=0, atol=0)


def test_hooks_are_removed(tiny_model):
    model, _ = tiny_model
    before = len(decoder_layers(model)[0]._forward_hooks)  # transformers keeps its own
    with capture_residuals(model, [0, 1]):
        assert len(decoder_layers(model)[0]._forward_hooks) == before + 1
    assert len(decoder_layers(model)[0]._forward_hooks) == before
