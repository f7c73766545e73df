import weakref

import pytest
import torch

from sae_unlearn.steering import ClampHook, clamp_prime, gated_clamp, steer
from sae_unlearn.steering.positions import (
    NEVER,
    NO_TRIGGER,
    SequenceState,
    advance,
    plan,
    read_forward,
)
from tests.tiny import random_sae


class FakeCache:
    def __init__(self, length: int):
        self.length = length

    def get_seq_length(self) -> int:
        return self.length


def ids(batch: int, length: int) -> torch.Tensor:
    return torch.zeros((batch, length), dtype=torch.long)


def test_a_fresh_left_padded_forward():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    # generate's positions: pads at 0 like the first real token
    positions = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 3]])
    inputs = read_forward(
        {"input_ids": ids(2, 4), "attention_mask": mask, "position_ids": positions}
    )
    assert inputs.past == 0 and inputs.batch == 2 and inputs.length == 4
    where = plan(inputs, None, gated=True)
    assert where.start.tolist() == [[False, False, True, False], [True, False, False, False]]
    assert where.real.tolist() == mask.bool().tolist()
    assert where.carry.tolist() == [False, False] and where.offset == 0


def test_cached_columns_from_cache_position_cache_or_mask():
    mask = torch.ones((1, 6), dtype=torch.long)
    assert read_forward({"input_ids": ids(1, 1), "attention_mask": mask}).past == 5
    cache = FakeCache(5)
    assert read_forward({"input_ids": ids(1, 1), "cache": cache, "attention_mask": mask}).past == 5
    assert read_forward({"input_ids": ids(1, 2), "cache_position": torch.tensor([7, 8])}).past == 7
    # no cache, no mask: explicit positions past 0 continue an earlier forward
    assert (
        read_forward({"input_ids": ids(1, 2), "position_ids": torch.tensor([[5, 6]])}).past is None
    )
    embeds = torch.zeros((3, 4, 8))
    assert read_forward({"inputs_embeds": embeds}).batch == 3


def test_what_cannot_be_read_is_refused():
    with pytest.raises(ValueError, match="2D attention mask.*a 4D mask"):
        read_forward({"input_ids": ids(1, 2), "attention_mask": torch.zeros((1, 1, 2, 2))})
    with pytest.raises(ValueError, match="but this forward passed a dict"):
        read_forward({"input_ids": ids(1, 2), "attention_mask": {"full_attention": None}})
    with pytest.raises(ValueError, match="some rows and not others"):
        read_forward({"input_ids": ids(2, 2), "position_ids": torch.tensor([[0, 1], [4, 5]])})
    with pytest.raises(ValueError, match="mask has 3 columns but the forward runs 1 positions"):
        read_forward(
            {"input_ids": ids(1, 1), "cache": FakeCache(5), "attention_mask": torch.ones((1, 3))}
        )


def test_a_continuation_needs_the_state_of_the_same_sequences():
    cache = FakeCache(4)
    inputs = read_forward({"input_ids": ids(2, 1), "cache": cache})
    assert plan(inputs, None, gated=False).start.tolist() == [[False], [False]]
    with pytest.raises(ValueError, match="cannot tell whether its gate is open.*after 4 cached"):
        plan(inputs, None, gated=True)

    def history(batch: int, length: int, fired_at: dict[int, int] | None = None):
        fired = torch.zeros((batch, length), dtype=torch.bool)
        for row, col in (fired_at or {}).items():
            fired[row, col] = True
        counted = torch.ones((batch, length), dtype=torch.bool)
        counted[:, 0] = False  # BOS
        return fired, counted

    other = SequenceState(*history(3, 4), 4, None, cache_checked=False)
    with pytest.raises(ValueError, match="continues 2 sequences but .* ran 3"):
        plan(inputs, other, gated=True)
    short = SequenceState(*history(2, 3), 3, None, cache_checked=False)
    with pytest.raises(ValueError, match="saw only 3"):
        plan(inputs, short, gated=True)
    other_cache = FakeCache(4)
    elsewhere = SequenceState(*history(2, 4), 4, weakref.ref(other_cache))
    with pytest.raises(ValueError, match="KV cache the gated clamp did not see"):
        plan(inputs, elsewhere, gated=True)
    same = SequenceState(*history(2, 4, {0: 2}), 4, weakref.ref(cache))
    where = plan(inputs, same, gated=True)
    assert where.carry.tolist() == [True, False]
    # What the counted gates read: triggers, counted positions, the last trigger's position.
    assert where.prefix.fires.tolist() == [1, 0] and where.prefix.count.tolist() == [3, 3]
    assert where.prefix.last.tolist() == [2, NO_TRIGGER]


def test_gate_state_follows_columns_and_cropped_caches():
    # Row 0's triggers at columns 6 and 8, row 1's never; the state covers 10 columns.
    fresh = plan(read_forward({"input_ids": ids(2, 10)}), None, gated=True)
    fired = torch.zeros((2, 10), dtype=torch.bool)
    fired[0, [6, 8]] = True
    counted = fresh.keep("cpu")
    state = advance(fresh, fired, counted)
    assert state.opened.tolist() == [6, NEVER] and state.length == 10
    for past, carry, fires in (
        (10, [True, False], 2),
        (7, [True, False], 1),
        (6, [False, False], 0),
    ):
        # A cache cropped back to `past` columns (assisted decoding) forgets later triggers.
        where = plan(
            read_forward({"input_ids": ids(2, 1), "cache_position": torch.tensor([past])}),
            state,
            gated=True,
        )
        assert where.carry.tolist() == carry and where.offset == past
        assert where.prefix.fires.tolist() == [fires, 0]
        assert where.prefix.count.tolist() == [past - 1] * 2
        step = torch.zeros((2, 1), dtype=torch.bool)
        assert advance(where, step, ~step).length == past + 1


def test_steered_forward_that_cannot_be_placed_raises(tiny_model):
    model, tokenizer = tiny_model
    sae = random_sae("jumprelu")
    batch = tokenizer(["Viruses replicate inside host cells"], return_tensors="pt")
    n = batch["input_ids"].shape[1]
    # one more token at position n, with no cache and no mask
    step = {"input_ids": batch["input_ids"][:, -1:], "position_ids": torch.tensor([[n]])}
    with torch.no_grad():
        with steer(model, ClampHook(sae, clamp_prime(0, [1, 2], -5.0))):
            model(**step)  # no gate: nothing to carry over
        with steer(model, ClampHook(sae, gated_clamp(0, [1, 2], [0.5, 0.5], -5.0))) as hook:
            with pytest.raises(ValueError, match="cannot tell whether its gate is open"):
                model(**step)
            model(**batch)  # the sequence so far: the step continues it
            model(**step)
            assert hook.state.length == n + 1
