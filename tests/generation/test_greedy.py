import pytest
import torch

from sae_unlearn.generation import greedy_generate, read_prompts
from sae_unlearn.steering import ClampHook, clamp_prime
from tests.evaluation.helpers import one_thread  # noqa: F401 (fixture)
from tests.steering.helpers import (
    LAYER,
    N_NEW,
    PROMPTS,
    config,
    gate_columns,
    oracle_greedy,
    tiny_setup,
)


@pytest.fixture(scope="module")
def setup():
    return tiny_setup("gemma3")


def opened(gate: list[bool]) -> list[bool]:
    return [g and not (i and gate[i - 1]) for i, g in enumerate(gate)]


@torch.no_grad()
def plain_greedy(model, ids: list[int]) -> list[int]:
    new: list[int] = []
    for _ in range(N_NEW):
        new.append(int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax()))
    return new


def test_steered_continuations_and_the_tokens_where_the_gate_opened(setup, tmp_path):
    model, tokenizer, sae = setup
    cfg = config("gated_clamp", tmp_path)
    eos = tokenizer.eos_token_id
    # batches of 3: left padding, and a hook reused across generate calls
    got = greedy_generate(model, tokenizer, PROMPTS, ClampHook(sae, cfg), N_NEW, batch_size=3)
    plain = greedy_generate(model, tokenizer, PROMPTS, None, N_NEW, batch_size=3)
    for prompt, steered, unsteered in zip(PROMPTS, got, plain, strict=True):
        ids = tokenizer(prompt)["input_ids"]
        assert steered.prompt_ids == ids
        expected = oracle_greedy(model, sae, cfg, ids, eos)
        fed = expected if eos in expected else expected[:-1]  # the last token is never run
        assert steered.new_ids == [t for t in expected if t != eos]
        marks = opened(gate_columns(model, sae, cfg, ids, fed))
        assert steered.prompt_marks == marks[: len(ids)]
        assert steered.new_marks == marks[len(ids) :] + [False] * (len(steered.new_ids) - len(fed))
        assert unsteered.new_ids == plain_greedy(model, ids)
        assert not any(unsteered.prompt_marks + unsteered.new_marks)
    # The gate opened in some prompts, in some continuations, and not everywhere.
    assert any(any(c.prompt_marks) for c in got) and any(any(c.new_marks) for c in got)
    assert any(not any(c.prompt_marks + c.new_marks) for c in got)
    assert all(sum(c.prompt_marks + c.new_marks) <= 1 for c in got)  # it opens once


def test_without_gated_rows_the_edited_tokens_are_marked(setup):
    model, tokenizer, sae = setup
    cfg = clamp_prime(LAYER, [30], -30.0)  # latent 30 fires on most tokens of prompt 0
    (got,) = greedy_generate(model, tokenizer, PROMPTS[:1], ClampHook(sae, cfg), N_NEW)
    ids = got.prompt_ids
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        f = sae.encode(hidden[cfg.layer + 1])[0]
    fires = (f[:, 30] > 0).tolist()
    assert got.prompt_marks == [False] + fires[1:]  # BOS is never edited
    assert 0 < sum(got.prompt_marks) < len(ids) - 1


def test_prompts_from_options_and_a_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first line\n\n  \nsecond line\n")
    assert read_prompts(["given"], path) == ["given", "first line", "second line"]
    with pytest.raises(ValueError, match="no prompts: give --prompt TEXT"):
        read_prompts([], None)
    with pytest.raises(ValueError, match="no such file"):
        read_prompts(None, tmp_path / "missing.txt")
