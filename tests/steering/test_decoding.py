"""Cached decoding under `steer` equals greedy decoding by whole sequences, for every action.

The reference reruns the whole sequence every step with no cache and no padding, steered by
a plain forward hook around the oracle (`reference_steer`: sae-lens' encode/decode, actions
applied position by position), never by the hook under test. Gemma 3 runs in float64, so
that no greedy choice sits on a rounding tie; Gemma 2 in float32, as transformers' eager
attention turns left-padded float64 rows into NaN (a float64 mask minimum cast to float32).
"""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.steering import (
    CSV_COLUMNS,
    ClampConfig,
    ClampHook,
    clamp_prime,
    gated_clamp,
    read_steering_csv,
    refusal_clamp,
    steer,
)
from tests.evaluation.helpers import one_thread  # noqa: F401 (fixture)
from tests.steering.reference import reference_gate, reference_steer
from tests.tiny import random_sae, tiny_gemma2, tiny_gemma3, tiny_tokenizer

PROMPTS = [
    "Viruses replicate inside host cells",
    "Paris is the capital of",
    "A compiler translates source code and",
    "Mosquitoes spread",
    "Newton described gravity; Shakespeare wrote",
    "The weather",
    "I'm sorry",
    "Vaccines train",
]
N_NEW = 8
LAYER = 0
# Gate latents and thresholds picked from these tiny models' activations: latent 50 opens
# the gate in the prompts of rows 0 and 3; latent 30 only after "Vaccines train" has been
# continued a little (row 7), latent 22 likewise after row 2's prompt; row 6 never opens it.
GATED = {30: 5.0, 22: 4.5, 50: 4.3, 52: 5.3}
CSV_ROWS = ["30,add,,0,2.5,,,", "22,clamp_cond,,3.0,-20,,,", "50,clamp_cond,,-inf,-8,,,"]


def config(mode: str, tmp_path) -> ClampConfig:
    latents = list(GATED)
    if mode == "clamp_prime":
        return clamp_prime(LAYER, latents, -30.0)
    if mode == "refusal_clamp":
        return refusal_clamp(LAYER, latents[:3], 52, 4.0, -30.0)
    if mode == "gated_clamp":
        return gated_clamp(LAYER, latents, list(GATED.values()), -30.0)
    (tmp_path / "steer.csv").write_text("\n".join([",".join(CSV_COLUMNS), *CSV_ROWS]) + "\n")
    return read_steering_csv(tmp_path / "steer.csv", LAYER)


@pytest.fixture(scope="module", params=["gemma3", "gemma2"])
def setup(request):
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    if request.param == "gemma3":
        model, dtype = tiny_gemma3(len(tokenizer)), torch.float64
    else:
        model, dtype = tiny_gemma2(len(tokenizer)), torch.float32
    return model.to(dtype), tokenizer, random_sae("jumprelu").to(dtype)


def until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@torch.no_grad()
def oracle_greedy(model, sae, cfg: ClampConfig, ids: list[int], eos: int) -> list[int]:
    def oracle(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        out = reference_steer(sae, cfg, h)
        return (out, *output[1:]) if isinstance(output, tuple) else out

    handle = model.model.layers[cfg.layer].register_forward_hook(oracle)
    new: list[int] = []
    try:
        for _ in range(N_NEW):
            logits = model(input_ids=torch.tensor([ids + new]), use_cache=False).logits
            new.append(int(logits[0, -1].argmax()))
            if new[-1] == eos:
                break
    finally:
        handle.remove()
    return new


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str]) -> list[list[int]]:
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=N_NEW, do_sample=False, use_cache=True)
    width = batch["input_ids"].shape[1]
    return [until_eos(row[width:].tolist(), tokenizer.eos_token_id) for row in out]


@torch.no_grad()
def gate_columns(model, sae, cfg: ClampConfig, ids: list[int], new: list[int]) -> list[bool]:
    """The oracle's gate over prompt + continuation. Block L's own output never depends on
    edits at block L, so the unsteered residual there is the one the hook reads."""
    hidden = model(input_ids=torch.tensor([ids + new]), output_hidden_states=True).hidden_states
    return reference_gate(sae.encode(hidden[cfg.layer + 1]), cfg)[0]


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
