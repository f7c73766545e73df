"""Tokenisation for caching: BOS-led packed sequences, capped, never padded."""

import pytest

from sae_unlearn.activations.tokenize import tokenize_corpus
from tests.activations.samples import TEXTS


def test_tokenize_corpus_packs_with_bos_and_eos(tiny_model):
    _, tokenizer = tiny_model
    seqs = tokenize_corpus(TEXTS, tokenizer, seq_len=16, max_tokens=10_000)
    assert seqs.shape[1] == 16
    assert (seqs[:, 0] == tokenizer.bos_token_id).all()
    assert (seqs == tokenizer.eos_token_id).sum() >= 1
    first = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"][:15]
    assert seqs[0, 1:].tolist() == first
    capped = tokenize_corpus(TEXTS, tokenizer, seq_len=16, max_tokens=40)
    assert capped.shape == (2, 16)


def test_tokenize_corpus_too_short(tiny_model):
    _, tokenizer = tiny_model
    with pytest.raises(ValueError, match="fewer than one sequence"):
        tokenize_corpus(["hi"], tokenizer, seq_len=64, max_tokens=1000)
