import pytest
import torch

from sae_unlearn.steering import (
    ClampHook,
    clamp_prime,
    gated_clamp,
    needs_whole_sequences,
    steer,
)
from tests.tiny import random_sae


def test_steer_context_manager_on_model(tiny_model):
    model, tokenizer = tiny_model
    sae = random_sae("jumprelu")
    batch = tokenizer(["Viruses replicate inside host cells."], return_tensors="pt")
    with torch.no_grad():
        plain = model(**batch).logits
        hook = ClampHook(sae, clamp_prime(0, list(range(0, 64, 3)), -50.0))
        with steer(model, hook):
            steered = model(**batch).logits
        after = model(**batch).logits
    assert not torch.allclose(plain, steered)
    torch.testing.assert_close(plain, after)
    with pytest.raises(ValueError, match="clamp layer=5 but the model has 2"):
        with steer(model, hook, layer=5):
            pass
    gated = ClampHook(sae, gated_clamp(0, [1, 2], [0.0, 0.0], -5.0))
    with steer(model, hook):
        assert not needs_whole_sequences(model)
        with steer(model, gated):
            assert needs_whole_sequences(model)
    assert not needs_whole_sequences(model)
