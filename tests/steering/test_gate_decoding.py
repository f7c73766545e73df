"""Cached decoding under the window and token-share gates equals greedy decoding by whole
sequences steered by the oracle (`tests.steering.reference`), as for the latched gate in
`test_decoding`: the gates' counts run on per row across a generation's forwards."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.steering import ClampHook, Gate, gated_clamp, steer
from tests.evaluation.helpers import one_thread  # noqa: F401 (fixture)
from tests.steering.helpers import (
    GATED,
    LAYER,
    N_NEW,
    PROMPTS,
    gate_columns,
    oracle_greedy,
    tiny_setup,
    until_eos,
)

# Picked from the tiny models' activations: the window closes again within a generation,
# and the token share first exceeds tau at a generated token.
GATES = {"window": Gate("window", window=3), "token_share": Gate("token_share", tau=0.2)}


@pytest.fixture(scope="module", params=["gemma3", "gemma2"])
def setup(request):
    return tiny_setup(request.param)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str]) -> list[list[int]]:
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=N_NEW, do_sample=False, use_cache=True)
    width = batch["input_ids"].shape[1]
    return [until_eos(row[width:].tolist(), tokenizer.eos_token_id) for row in out]


def gated(gate: Gate | None = None):
    return gated_clamp(LAYER, list(GATED), list(GATED.values()), -30.0, gate=gate)


@pytest.mark.parametrize("kind", list(GATES))
def test_cached_generate_equals_whole_sequence_greedy(setup, kind):
    model, tokenizer, sae = setup
    cfg = gated(GATES[kind])
    eos = tokenizer.eos_token_id
    prompt_ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    expected = [oracle_greedy(model, sae, cfg, ids, eos) for ids in prompt_ids]
    latched = [oracle_greedy(model, sae, gated(), ids, eos) for ids in prompt_ids]
    plain = generate(model, tokenizer, PROMPTS)
    with steer(model, ClampHook(sae, cfg)):
        batched = generate(model, tokenizer, PROMPTS)  # left-padded
        alone = [generate(model, tokenizer, [p])[0] for p in PROMPTS]
    assert batched == expected
    assert alone == expected
    assert sum(e != p for e, p in zip(expected, plain, strict=True)) >= 2  # steering bites
    assert expected != latched  # and the gate kind matters
    gates = [
        gate_columns(model, sae, cfg, ids, new)
        for ids, new in zip(prompt_ids, expected, strict=True)
    ]
    generated = [
        g[len(ids) : len(ids) + N_NEW - 1] for g, ids in zip(gates, prompt_ids, strict=True)
    ]
    if kind == "window":
        # Open at a generated token and shut again at a later one: the window moved on.
        assert any(
            any(g[i] and not g[j] for i in range(len(g)) for j in range(i + 1, len(g)))
            for g in generated
        )
    else:
        # Shut through the prompt, open at a generated token: the counts ran on.
        assert any(
            not g[len(ids) - 1] and any(n)
            for g, n, ids in zip(gates, generated, prompt_ids, strict=True)
        )


@pytest.mark.parametrize("kind", list(GATES))
@torch.no_grad()
def test_a_hand_written_cached_loop_equals_whole_sequence_greedy(setup, kind):
    # No mask and no positions: the hook counts cached columns; the model makes the cache.
    model, tokenizer, sae = setup
    cfg = gated(GATES[kind])
    for prompt in (PROMPTS[0], PROMPTS[7]):
        ids = tokenizer(prompt)["input_ids"]
        expected = oracle_greedy(model, sae, cfg, ids, tokenizer.eos_token_id)
        new = []
        with steer(model, ClampHook(sae, cfg)):
            out = model(input_ids=torch.tensor([ids]), use_cache=True)
            while len(new) < len(expected):
                new.append(int(out.logits[0, -1].argmax()))
                out = model(input_ids=torch.tensor([new[-1:]]), cache=out.cache, use_cache=True)
        assert new == expected
