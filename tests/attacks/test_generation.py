import math

import pytest
import torch

from sae_unlearn.attacks.generation import continuation_perplexities, fluency_summary
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
