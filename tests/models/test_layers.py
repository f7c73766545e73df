"""Decoder blocks: the layer range check, the hidden size, the hook name."""

import pytest

from sae_unlearn.models.capture import capture_residuals
from sae_unlearn.models.layers import check_layer, hidden_size, num_layers, resid_hook_name


def test_check_layer_names_the_range(tiny_model):
    model, _ = tiny_model
    check_layer(model, 1)
    with pytest.raises(ValueError, match=r"sae.layer=7 but the model has 2 decoder layers"):
        check_layer(model, 7)
    with pytest.raises(ValueError, match="cache.layers entry=-1"):
        with capture_residuals(model, [-1]):
            pass


def test_hidden_size_and_layer_count(tiny_model):
    model, _ = tiny_model
    assert hidden_size(model) == 32
    assert num_layers(model) == 2


def test_resid_hook_name_is_gemma_scope_style():
    assert resid_hook_name(7) == "blocks.7.hook_resid_post"
