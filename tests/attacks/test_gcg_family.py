"""The GCG family: the budget curve (step 0 is no suffix, each suffix scored once) and the
unattacked row taken from a given reference."""

import pandas as pd

from sae_unlearn.attacks.gcg import GCGConfig, GCGResult
from sae_unlearn.attacks.gcg_family import GCGAttackConfig, budget_curve, gcg_attack
from sae_unlearn.attacks.subsets import pool_and_scored
from sae_unlearn.evaluation.config import EvalConfig
from tests.evaluation.helpers import questions


def test_budget_curve_scores_each_checkpoint_suffix_once():
    result = GCGResult(
        0.5, "c", [3], 2.0, losses=[1.5, 1.0, 0.5, 0.4], strings=["a", "b", "c", "c"]
    )
    calls = []
    accuracy = {"": 0.25, "b": 0.5, "c": 0.75}

    def score(suffix):
        calls.append(suffix)
        return pd.DataFrame({"correct": [accuracy[suffix] >= t for t in (0.2, 0.4, 0.6, 0.8)]})

    curve = budget_curve(result, 2, score)
    assert curve == {"0": 0.25, "2": 0.5, "4": 0.75}
    assert calls == ["", "b", "c"]


def test_the_reference_gives_the_none_row(tiny_model):
    model, tokenizer = tiny_model
    pool, scored = pool_and_scored(questions(10), None, 0)
    fixed = scored[["question", "subject", "answer"]].copy()
    fixed["correct"] = [True] + [False] * (len(fixed) - 1)  # not what the model scores
    fixed["correct_norm"] = fixed["correct"]
    cfg = GCGAttackConfig(
        GCGConfig(num_steps=1, search_width=4, topk=4, optim_str_init="x x", max_tokens=256),
        n_questions=1,
        eval_every=1,
    )
    out = gcg_attack(
        model,
        tokenizer,
        pool,
        scored,
        {"baseline": None},
        cfg,
        EvalConfig(bootstrap=20),
        log=lambda _: None,
        reference={"baseline": {"forget": fixed}},
    )
    assert out.metrics["baseline"]["none"]["acc"] == 1 / len(fixed)
    assert out.metrics["search"]["baseline"]["acc_by_step"]["0"] == 1 / len(fixed)
    assert out.metrics["n"] == len(scored) and out.metrics["n_targets"] == 1
    assert list(out.records["losses"]["baseline"]) and out.run_info["gcg_seconds_per_step"]
