import torch

from sae_unlearn.attacks.gcg_tokens import allowed_token_mask, gcg_prompts, round_trips
from sae_unlearn.evaluation.prompts import prompt_texts
from tests.evaluation.helpers import questions


def test_allowed_tokens_exclude_special_and_non_ascii(tiny_model):
    _, tokenizer = tiny_model
    allowed = allowed_token_mask(tokenizer, len(tokenizer) + 5, allow_non_ascii=False)
    for special in tokenizer.all_special_ids:
        assert not allowed[special]
    assert not allowed[len(tokenizer) :].any()  # embedding rows beyond the tokenizer
    for i in torch.nonzero(allowed).flatten().tolist():
        text = tokenizer.decode([i])
        assert text.isascii() and text.isprintable()


def test_allowed_tokens_are_exactly_the_printable_ascii_ones(tiny_model):
    """Every token is checked both ways against transformers' own `decode`, one at a time."""
    _, tokenizer = tiny_model
    allowed = allowed_token_mask(tokenizer, len(tokenizer), allow_non_ascii=False)
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    expected = [
        i not in special and bool(t) and t.isascii() and t.isprintable()
        for i, t in ((i, tokenizer.decode([i])) for i in range(len(tokenizer)))
    ]
    assert allowed.tolist() == expected
    assert 0 < sum(expected) < len(expected)
    with_non_ascii = allowed_token_mask(tokenizer, len(tokenizer), allow_non_ascii=True)
    assert with_non_ascii.sum() >= allowed.sum()
    assert not with_non_ascii[sorted(special)].any()


def test_gcg_prompts_reassemble_the_evaluation_prompt(tiny_model):
    _, tokenizer = tiny_model
    q = questions(2)
    suffix_ids = tokenizer(" x x", add_special_tokens=False)["input_ids"]
    for fmt in ("cloze", "letter"):
        prompts = gcg_prompts(tokenizer, q, fmt)
        for p, text in zip(prompts, prompt_texts(q, fmt, suffix="x x"), strict=True):
            assert p.text_before + " x x" + p.text_after == text
            whole = tokenizer(text + p.continuation, add_special_tokens=False)["input_ids"]
            assert p.before + suffix_ids + p.after + p.target == [tokenizer.bos_token_id] + whole
        assert round_trips(tokenizer, prompts, suffix_ids)
