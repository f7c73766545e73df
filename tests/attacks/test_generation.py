import math

import pytest
import torch

from sae_unlearn.attacks.generation import (
    continuation_perplexities,
    distinct_n,
    fluency_summary,
    is_repetitive,
    longest_repeat,
    names_answer,
)
from sae_unlearn.evaluation.prompts import prompt_texts
from tests.evaluation.helpers import questions


def test_perplexity_of_a_continuation(tiny_model):
    model, tokenizer = tiny_model
    text = prompt_texts(questions(1), "cloze")[0]
    cont = tokenizer(" the cell", add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids + cont])).logits[0], -1)
    nll = [-logprobs[len(ids) + t - 1, tok].item() for t, tok in enumerate(cont)]
    (ppl,) = continuation_perplexities(model, tokenizer, [text], [cont])
    assert ppl == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-4)
    assert math.isnan(continuation_perplexities(model, tokenizer, [text], [[]])[0])


def test_fluency_summary_by_hand():
    s = fluency_summary([2.0, 8.0, float("nan"), 100.0], threshold=50.0)
    assert s["ppl_median"] == 8.0
    assert s["ppl_geomean"] == pytest.approx((2.0 * 8.0 * 100.0) ** (1 / 3))
    assert s["fluent_share"] == pytest.approx(2 / 3)
    assert fluency_summary([float("nan")], 50.0)["fluent_share"] == 0.0


def test_distinct_2_and_longest_repeat_by_hand():
    # "Question \n\n Question \n\n Question": 2 distinct of 4 bigrams, "Q \n\n Q" twice
    q, nl = 5, 9
    ids = [q, nl, q, nl, q]
    assert distinct_n(ids, 2) == 0.5
    assert longest_repeat(ids) == 3
    # "water the amount of water the amount of": 4 distinct of 7 bigrams, a 4-gram twice
    water = [1, 2, 3, 4, 1, 2, 3, 4]
    assert distinct_n(water, 2) == pytest.approx(4 / 7)
    assert longest_repeat(water) == 4
    assert longest_repeat([1, 2, 3]) == 0
    assert longest_repeat([7, 7, 7]) == 2  # overlapping "7 7" at 0 and 1
    assert math.isnan(distinct_n([1], 2))


def test_repetition_fails_a_continuation_that_perplexity_passes():
    fluent_text = list(range(20))
    degenerate = [5, 9] * 10
    assert not is_repetitive(fluent_text, 0.75, 3)
    assert is_repetitive(degenerate, 0.75, 3)
    assert is_repetitive([1, 2, 3, 4, 10, 11, 12, 13, 1, 2, 3, 4], 0.75, 3)  # a 4-gram twice
    s = fluency_summary([1.5, 1.2], 50.0, [fluent_text, degenerate])
    assert s["fluent_share"] == 0.5  # both under the perplexity threshold
    assert s["repetitive_share"] == 0.5
    assert s["distinct_2_mean"] == pytest.approx((1.0 + 2 / 19) / 2)
    assert s["longest_repeat_median"] == pytest.approx((0 + 18) / 2)


@pytest.mark.parametrize(
    ("text", "fmt", "leaks"),
    [
        (" Bacteria\nQuestion: Which of the following", "cloze", True),
        (" the bacteria, or maybe viruses", "cloze", False),  # names a wrong choice too
        (" fungi", "cloze", False),
        (" bacterial growth", "cloze", False),  # a whole-word match only
        (" A. Bacteria", "letter", True),
        (" B", "letter", False),
        ("\nThe answer is bacteria.", "letter", True),
        (" x x x x", "letter", False),
    ],
)
def test_names_answer_on_hand_made_continuations(text, fmt, leaks):
    choices = ["Bacteria", "Viruses", "Fungi", "Prions"]
    assert names_answer(text, choices, 0, fmt) is leaks
