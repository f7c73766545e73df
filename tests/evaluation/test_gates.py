"""Where the gate opened while scoring, on a tiny model: a hand-made gate that opens at a
known token, checked against a plain forward, in dense batches and packed rows alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.gates import gate_summary
from sae_unlearn.evaluation.requests import build_requests, encode_requests
from sae_unlearn.evaluation.run import evaluate_questions, evaluate_sets, maybe_steer
from sae_unlearn.steering import ClampHook, clamp_prime, gated_clamp
from tests.evaluation.helpers import QUESTIONS, tiny_sae

LAYER = 0  # hidden_states[L + 1] is block L's output (the last one is normed)
TARGET = (0, "ari")  # question 0, "Which insect spreads malaria?": "ari" of " m|al|ari|a"


@torch.no_grad()
def latents(model, sae, ids: list[int]) -> torch.Tensor:
    """`[T, d_sae]`: the unsteered latents at the hook's layer (block L's output never depends
    on edits at block L, so these are what the hook reads)."""
    hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    return sae.encode(hidden[LAYER + 1])[0]


def prompt_ids(tokenizer, fmt: str) -> list[list[int]]:
    pairs = encode_requests(tokenizer, build_requests(QUESTIONS, fmt))
    per_question = len(pairs) // len(QUESTIONS)
    return [pairs[k][0] for k in range(0, len(pairs), per_question)]


@pytest.fixture(scope="module")
def sae():
    return tiny_sae()


@pytest.fixture(scope="module")
def malaria_gate(tiny_model, sae):
    """A gate on the one latent that rises most at "ari" over the tokens before it, its
    threshold halfway: it opens at "ari" in question 0 (cloze)."""
    model, tokenizer = tiny_model
    ids = prompt_ids(tokenizer, "cloze")[TARGET[0]]
    tokens = [tokenizer.decode([t]) for t in ids]
    at = tokens.index(TARGET[1])
    f = latents(model, sae, ids)
    margin = f[at] - f[1:at].max(dim=0).values
    latent = int(margin.argmax())
    assert margin[latent] > 0.05
    threshold = float(f[1:at, latent].max() + margin[latent] / 2)
    return latent, threshold, at


def expected(model, tokenizer, sae, fmt: str, fires) -> list[tuple[bool, int | None]]:
    """Per question, from plain forwards: whether the gate is open at a scored position of
    the prompt or of a choice's continuation (all but the last token), and the prompt
    position where it opened (BOS never opens it)."""
    requests = build_requests(QUESTIONS, fmt)
    pairs = encode_requests(tokenizer, requests)
    out, k = [], 0
    for r in requests:
        opened, position = False, None
        for ctx, cont in pairs[k : k + len(r.continuations)]:
            fire = fires(latents(model, sae, ctx + cont))[: len(ctx + cont) - 1]
            fire[0] = False
            opened |= bool(fire.any())
            if fire[: len(ctx)].any():
                position = int(np.argmax(fire[: len(ctx)]))
        k += len(r.continuations)
        out.append((opened, position))
    return out


def recorded(frame: pd.DataFrame) -> list[tuple[bool, int | None]]:
    positions = [None if pd.isna(p) else int(p) for p in frame["gate_position"]]
    return list(zip(frame["gate_opened"].tolist(), positions, strict=True))


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
@pytest.mark.parametrize("packed", [False, True])
def test_the_gate_opens_at_the_known_token(tiny_model, sae, malaria_gate, fmt, packed):
    model, tokenizer = tiny_model
    latent, threshold, at = malaria_gate
    hook = ClampHook(sae, gated_clamp(LAYER, [latent], [threshold], -20.0))
    with maybe_steer(model, hook):
        # batches of 3: several lengths padded together; packed: letter prompts share the
        # subject description only per subject, cloze prompts share "Question:"
        frame = evaluate_questions(
            model, tokenizer, QUESTIONS, EvalConfig(format=fmt, batch_size=3),
            packed=packed, max_tokens=40, gates=hook,
        )  # fmt: skip
    assert hook.trace is None  # handed back as found
    q = TARGET[0]
    offset = len(prompt_ids(tokenizer, fmt)[q]) - len(prompt_ids(tokenizer, "cloze")[q])
    if fmt == "cloze":
        assert frame["gate_token"][q] == TARGET[1] and frame["gate_position"][q] == at
    else:  # the letter prompt's description comes first; it may open the gate earlier
        assert frame["gate_position"][q] <= at + offset
    assert frame["gate_opened"][q]
    want = expected(model, tokenizer, sae, fmt, lambda f: (f[:, latent] > threshold).numpy())
    assert recorded(frame) == want
    for (_, position), token, ids in zip(
        want, frame["gate_token"], prompt_ids(tokenizer, fmt), strict=True
    ):
        assert (None if pd.isna(token) else token) == (
            None if position is None else tokenizer.decode([ids[position]])
        )
    if fmt == "cloze":  # prompts open it at several tokens; one opens it only in a choice
        assert len({p for _, p in want}) > 2 and (True, None) in want


def test_without_a_gate_the_first_edited_token_counts(tiny_model, sae):
    model, tokenizer = tiny_model
    # The latent whose first firing (after BOS) falls on the most different prompt positions
    firsts = [
        ((latents(model, sae, ids)[1:] > 0).float().argmax(0) + 1).tolist()
        for ids in prompt_ids(tokenizer, "cloze")
    ]
    latent = max(range(len(firsts[0])), key=lambda i: len({row[i] for row in firsts}))
    hook = ClampHook(sae, clamp_prime(LAYER, [latent], -20.0))
    with maybe_steer(model, hook):
        frame = evaluate_questions(
            model, tokenizer, QUESTIONS, EvalConfig(format="cloze", batch_size=2), gates=hook
        )
    want = expected(model, tokenizer, sae, "cloze", lambda f: (f[:, latent] > 0).numpy())
    assert recorded(frame) == want
    assert len({p for _, p in want}) > 1  # not every question edits from the same token


def test_unsteered_results_have_no_gate_columns_and_steered_metrics_count_them(
    tiny_model, sae, malaria_gate
):
    model, tokenizer = tiny_model
    latent, threshold, _ = malaria_gate
    hook = ClampHook(sae, gated_clamp(LAYER, [latent], [threshold], -20.0))
    cfg = EvalConfig(format="cloze", batch_size=4, bootstrap=20)
    plain, plain_metrics = evaluate_sets(model, tokenizer, {"retain": QUESTIONS}, cfg)
    assert "gate_opened" not in plain["retain"] and "gate" not in plain_metrics["retain"]
    results, metrics = evaluate_sets(model, tokenizer, {"retain": QUESTIONS}, cfg, hook=hook)
    frame = results["retain"]
    assert metrics["retain"]["gate"] == gate_summary(frame)
    assert metrics["retain"]["gate"]["opened"] == int(frame["gate_opened"].sum()) >= 1
    assert metrics["retain"]["gate"]["in_prompt"] == int(frame["gate_position"].notna().sum())


def test_gate_summary_counts_by_hand():
    frame = pd.DataFrame(
        {
            "gate_opened": [True, True, False, False],
            "gate_position": pd.array([3, None, None, None], dtype="Int64"),
        }
    )
    assert gate_summary(frame) == {"opened": 2, "share": 0.5, "in_prompt": 1}
