"""Question sets, a tiny SAE and clamp hooks shared by the evaluation and attack tests."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

from sae_unlearn.models import decoder_layers
from sae_unlearn.steering import ClampHook, clamp_prime, gated_clamp

D_IN = 32  # hidden size of tests.tiny models
WORDS = ["replicate", "divide", "bind", "kill", "spread", "mutate", "infect", "grow"]

QUESTIONS = pd.DataFrame(
    {
        "question": [
            "Which insect spreads malaria?",
            "What is the capital of France?",
            "What do B cells make?",
            "Who wrote Hamlet?",
            "What does a compiler translate?",
        ],
        "choices": [
            ["mosquitoes", "bees", "ants", "butterflies"],
            ["Paris", "Berlin", "Madrid", "Rome"],
            ["antibodies", "bones", "hair", "sugar"],
            ["William Shakespeare", "Mozart", "Newton", "Picasso"],
            ["source code", "music", "weather", "paintings"],
        ],
        "answer": [0, 0, 0, 0, 0],
        "subject": ["virology", "geography", "immunology", "arts", "computer_science"],
    }
)


def questions(n: int, subject: str = "virology", offset: int = 0) -> pd.DataFrame:
    rows = []
    for i in range(n):
        w = WORDS[(i + offset) % len(WORDS)]
        rows.append(
            {
                "question": f"In {subject}, what do viruses {w} in cells number {i + offset}?",
                "choices": [w, "bacteria", "the cell", "Paris"],
                "answer": i % 4,
                "subject": subject,
            }
        )
    return pd.DataFrame(rows)


def tiny_sae(seed: int = 0) -> JumpReLUSAE:
    torch.manual_seed(seed)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=64))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.5)
        sae.W_dec.normal_(0, 0.5)
        sae.b_enc.normal_(0, 0.2)
        sae.threshold.uniform_(0.0, 0.3)
    return sae.eval()


def narrow_window_gemma2(n_layers: int = 4, seed: int = 0):
    """A tiny Gemma 2 whose sliding window (4 tokens) is shorter than the questions, with
    local and global attention blocks alternating (so each block's own mask matters)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from tests.tiny import _tiny_config, tiny_tokenizer

    torch.manual_seed(seed)
    config = {**_tiny_config(len(tiny_tokenizer()), D_IN, n_layers), "sliding_window": 4}
    return Gemma2ForCausalLM(Gemma2Config(**config)).eval()


def gated_on_one_latent(block: int = 2):
    """A gate on latent 48 of `tiny_sae` at 13.0: on `narrow_window_gemma2`'s block 2, 12 of
    the 32 cloze sequences of `questions(8)` peak at 11.4 or below and 20 at 14.6 or above."""
    latents = [48, *range(0, 48, 2)]
    return ClampHook(tiny_sae(), gated_clamp(block, latents, [13.0] + [1e9] * 24, -20.0))


def reference_loglik(model, tokenizer, context: str, continuation: str) -> float:
    """Plain unbatched loop: one full forward per (question, choice), full logits, with the
    tokenisation written out here (BOS, then context and continuation split lm-eval style)."""
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] + whole
    n_ctx = 1 + len(ctx)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(n_ctx, len(ids)))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core machine
    # waiting for a descheduled thread makes every small op ~10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hook():
    # Clamp many latents of the last block hard, so steering visibly changes outputs.
    return ClampHook(tiny_sae(), clamp_prime(1, list(range(0, 64, 2)), -20.0))


@pytest.fixture(scope="module")
def gated_hook():
    # At 15.5 the gate opens part-way through some questions and never in others (the
    # "Question" token at position 1 reaches 15.46), so scoring must see them whole.
    return ClampHook(tiny_sae(), gated_clamp(1, list(range(0, 64, 2)), [15.5] * 32, -20.0))


def block_calls(model, block: int, run, *args, **kwargs):
    """How many forwards run decoder block `block` in `run(*args, **kwargs)`, and its result
    (counted by wrapping the block's `forward`: a hook there makes the rows start at block 0)."""
    module = decoder_layers(model)[block]
    calls = [0]
    original = module.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    module.forward = counted
    try:
        result = run(*args, **kwargs)
    finally:
        del module.forward
    return calls[0], result
