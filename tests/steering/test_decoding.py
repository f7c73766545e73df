"""Cached decoding under `steer` equals greedy decoding by whole sequences, for every action.

The reference reruns the whole sequence every step with no cache and no padding, steered by
a plain forward hook around the oracle (`reference_steer`: sae-lens' encode/decode, actions
applied position by position), never by the hook under test (`tests.steering.helpers`).
"""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.steering import ClampHook, gated_clamp, steer
from tests.evaluation.helpers import one_thread  # noqa: F401 (fixture)
from tests.steering.helpers import (
    GATED,
    LAYER,
    N_NEW,
    PROMPTS,
    config,
    gate_columns,
    oracle_greedy,
    tiny_setup,
    until_eos,
)


@pytest.fixture(scope="module", params=["gemma3", "gemma2"])
def setup(request):
    return tiny_setup(request.param)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str]) -> list[list[int]]:
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=N_NEW, do_sample=False, use_cache=True)
    width = batch["input_ids"].shape[1]
    return [until_eos(row[width:].tolist(), tokenizer.eos_token_id) for row in out]


@pytest.mark.parametrize("mode", ["clamp_prime", "refusal_clamp", "gated_clamp", "csv"])
def test_cached_generate_equals_whole_sequence_greedy(setup, mode, tmp_path):
    model, tokenizer, sae = setup
    cfg = config(mode, tmp_path)
    eos = tokenizer.eos_token_id
    prompt_ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    expected = [oracle_greedy(model, sae, cfg, ids, eos) for ids in prompt_ids]
    plain = generate(model, tokenizer, PROMPTS)
    hook = ClampHook(sae, cfg)
    with steer(model, hook):
        batched = generate(model, tokenizer, PROMPTS)  # left-padded
        alone = [generate(model, tokenizer, [p])[0] for p in PROMPTS]
    assert batched == expected
    assert alone == expected
    assert sum(e != p for e, p in zip(expected, plain, strict=True)) >= 2  # steering bites
    if mode == "gated_clamp":
        gates = [
            gate_columns(model, sae, cfg, ids, new)
            for ids, new in zip(prompt_ids, expected, strict=True)
        ]
        in_prompt = [g[len(ids) - 1] for g, ids in zip(gates, prompt_ids, strict=True)]
        # Opened at a generated token that later tokens read (not the last one).
        mid = [
            not g[len(ids) - 1] and any(g[len(ids) : len(ids) + N_NEW - 1])
            for g, ids in zip(gates, prompt_ids, strict=True)
        ]
        assert 0 < sum(in_prompt) < len(PROMPTS) and any(mid)
        # Where the gate opened mid-generation, what follows is steered.
        for row in [i for i, m in enumerate(mid) if m]:
            assert expected[row] != plain[row]


def test_a_new_prompt_starts_with_a_closed_gate(setup, tmp_path):
    model, tokenizer, sae = setup
    cfg = config("gated_clamp", tmp_path)
    opener, closed = PROMPTS[0], PROMPTS[6]
    ids = tokenizer(closed)["input_ids"]
    expected = oracle_greedy(model, sae, cfg, ids, tokenizer.eos_token_id)
    assert not any(gate_columns(model, sae, cfg, ids, expected))
    hook = ClampHook(sae, cfg)
    with steer(model, hook):
        generate(model, tokenizer, [opener])
        assert int(hook.state.opened[0]) < len(tokenizer(opener)["input_ids"])
        second = generate(model, tokenizer, [closed])[0]
    assert second == expected
    # A gate left open would have steered every token of the second prompt.
    with steer(model, ClampHook(sae, gated_clamp(LAYER, list(GATED), [-1.0] * 4, -30.0))):
        assert generate(model, tokenizer, [closed])[0] != expected


@torch.no_grad()
def test_a_hand_written_cached_loop_equals_whole_sequence_greedy(setup, tmp_path):
    # No mask and no positions: the hook counts cached columns; the model makes the cache.
    model, tokenizer, sae = setup
    cfg = config("gated_clamp", tmp_path)
    for prompt in (PROMPTS[0], PROMPTS[7]):  # gate opens in the prompt; mid-generation
        ids = tokenizer(prompt)["input_ids"]
        expected = oracle_greedy(model, sae, cfg, ids, tokenizer.eos_token_id)
        new = []
        with steer(model, ClampHook(sae, cfg)):
            out = model(input_ids=torch.tensor([ids]), use_cache=True)
            while len(new) < len(expected):
                new.append(int(out.logits[0, -1].argmax()))
                out = model(input_ids=torch.tensor([new[-1:]]), cache=out.cache, use_cache=True)
        assert new == expected
