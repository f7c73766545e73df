"""The attacks' halves, run apart and joined, give what one run of both models gives."""

from __future__ import annotations

import pandas as pd
import pytest

from sae_unlearn.attacks import AttackConfig, GCGConfig, GibberishConfig, run_attacks
from sae_unlearn.attacks.halves import half_record, join_halves, read_half, write_half
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation import EvalConfig
from tests.evaluation.helpers import questions

CFG = AttackConfig(
    evaluation=EvalConfig(format="cloze", batch_size=4, bootstrap=20),
    fewshot=(0, 2),
    n_eval=4,
    n_questions=2,
    gcg=GCGConfig(num_steps=2, search_width=4, topk=8, optim_str_init="x x x"),
    gibberish=GibberishConfig(n_prompts=2, max_new_tokens=3, n_samples=2),
)


def test_joined_halves_equal_one_run_of_both(tiny_model, hook, tmp_path):
    model, tokenizer = tiny_model
    forget, retain = questions(5), questions(5, "geography", offset=2)

    def attack(hooks):
        return run_attacks(model, tokenizer, forget, retain, hooks, CFG, log=lambda _: None)

    both = attack({"baseline": None, "steered": hook})
    record = half_record(CFG, forget, retain)
    write_half(attack({"baseline": None}), record, tmp_path / "half")
    joined = join_halves(read_half(tmp_path / "half", record), attack({"steered": hook}))
    assert joined.metrics == both.metrics
    assert joined.accuracy == both.accuracy
    assert joined.suffixes == both.suffixes
    pd.testing.assert_frame_equal(joined.loss_curves, both.loss_curves)


def test_a_half_of_other_questions_is_refused(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    forget, retain = questions(5), questions(5, "geography", offset=2)
    half = run_attacks(model, tokenizer, forget, retain, {"baseline": None}, CFG, log=print)
    write_half(half, half_record(CFG, forget, retain), tmp_path / "half")
    with pytest.raises(UserError, match="on other forget questions"):
        read_half(tmp_path / "half", half_record(CFG, questions(6), retain))
