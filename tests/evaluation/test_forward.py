"""A forward split after one block: the first half's output, fed to the second, gives the
whole forward's final hidden states, and the model is left as it was."""

import pytest
import torch
from transformers import DynamicCache

from sae_unlearn.evaluation.forward import (
    decoder,
    final_hidden,
    final_hidden_after_block,
    hidden_after_block,
)
from sae_unlearn.models import decoder_layers
from tests.evaluation.helpers import narrow_window_gemma2


def test_split_forward_equals_the_whole(tiny_model):
    model_window = narrow_window_gemma2()
    for model in (model_window, tiny_model[0]):
        base = decoder(model)
        blocks = list(decoder_layers(model))
        ids = torch.tensor([[2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49]])
        with torch.no_grad():
            whole = final_hidden(base, input_ids=ids)
            for block in range(len(blocks) - 1):
                after = hidden_after_block(base, block, input_ids=ids)
                got = final_hidden_after_block(base, block, after, input_ids=ids)
                torch.testing.assert_close(got, whole, atol=1e-5, rtol=0)
        assert list(decoder_layers(model)) == blocks  # the stand-ins are gone


def test_split_forward_after_a_cached_prefix():
    # The narrow sliding window (4 tokens) and alternating layer kinds make each block's own
    # mask matter: the second half must give every block the mask of its kind.
    model = narrow_window_gemma2()
    base = decoder(model)
    prefix, rest = [2, 40, 41, 42, 43, 44], [45, 46, 47, 48, 49, 50]
    positions = torch.arange(len(prefix), len(prefix) + len(rest))[None]
    with torch.no_grad():
        whole = final_hidden(base, input_ids=torch.tensor([prefix + rest]))[:, len(prefix) :]
        first, second = DynamicCache(), DynamicCache()
        for target in (first, second):
            final_hidden(base, target, input_ids=torch.tensor([prefix]))
        after = hidden_after_block(
            base, 1, first, input_ids=torch.tensor([rest]), position_ids=positions
        )
        got = final_hidden_after_block(
            base, 1, after, second, input_ids=torch.tensor([rest]), position_ids=positions
        )
    torch.testing.assert_close(got, whole, atol=1e-5, rtol=0)


def test_the_blocks_come_back_when_the_forward_fails():
    model = narrow_window_gemma2()
    blocks = list(decoder_layers(model))
    with pytest.raises(Exception):  # noqa: B017 - any failure inside the forward
        final_hidden_after_block(
            decoder(model), 1, torch.zeros(1, 3, 7), input_ids=torch.tensor([[2, 3, 4]])
        )
    assert list(decoder_layers(model)) == blocks
