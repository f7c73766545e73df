"""Prompts, clamp configs and the oracle's greedy decoding shared by the steering and
generation tests: tiny models, and gate thresholds picked from their activations."""

from __future__ import annotations

import torch

from sae_unlearn.steering import (
    CSV_COLUMNS,
    ClampConfig,
    clamp_prime,
    gated_clamp,
    read_steering_csv,
    refusal_clamp,
)
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


def until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@torch.no_grad()
def oracle_greedy(
    model, sae, cfg: ClampConfig, ids: list[int], eos: int, n_new: int = N_NEW
) -> list[int]:
    """Greedy decoding that reruns the whole sequence every step (no cache, no padding),
    steered by a plain forward hook around the oracle `reference_steer`."""

    def oracle(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        out = reference_steer(sae, cfg, h)
        return (out, *output[1:]) if isinstance(output, tuple) else out

    handle = model.model.layers[cfg.layer].register_forward_hook(oracle)
    new: list[int] = []
    try:
        for _ in range(n_new):
            logits = model(input_ids=torch.tensor([ids + new]), use_cache=False).logits
            new.append(int(logits[0, -1].argmax()))
            if new[-1] == eos:
                break
    finally:
        handle.remove()
    return new


def tiny_setup(arch: str):
    """(model, tokenizer, SAE): Gemma 3 in float64, so that no greedy choice sits on a
    rounding tie; Gemma 2 in float32, as transformers' eager attention turns left-padded
    float64 rows into NaN (a float64 mask minimum cast to float32)."""
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    if arch == "gemma3":
        model, dtype = tiny_gemma3(len(tokenizer)), torch.float64
    else:
        model, dtype = tiny_gemma2(len(tokenizer)), torch.float32
    return model.to(dtype), tokenizer, random_sae("jumprelu").to(dtype)


@torch.no_grad()
def gate_columns(model, sae, cfg: ClampConfig, ids: list[int], new: list[int]) -> list[bool]:
    """The oracle's gate over prompt + continuation. Block L's own output never depends on
    edits at block L, so the unsteered residual there is the one the hook reads."""
    hidden = model(input_ids=torch.tensor([ids + new]), output_hidden_states=True).hidden_states
    return reference_gate(sae.encode(hidden[cfg.layer + 1]), cfg)[0]
