"""In-context relearning: shots from the dev half of the forget questions, the test half scored."""

from __future__ import annotations

import pandas as pd
import pytest

import sae_unlearn.evaluation.run as evaluation_run
from sae_unlearn.attacks.icl import ICLConfig, icl_attack
from sae_unlearn.attacks.subsets import pool_and_scored
from sae_unlearn.data.splits import question_split
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from tests.evaluation.helpers import questions

EVAL = EvalConfig(format="cloze", batch_size=4, bootstrap=100)
# questions(16)'s halves (sha256 of the normalised text, checked below with question_split):
# rows 2, 8, 9, 10, 13, 14, 15 are in the test half, the other 9 in the dev half.
TEST_ROWS = [2, 8, 9, 10, 13, 14, 15]
DEV_ROWS = [0, 1, 3, 4, 5, 6, 7, 11, 12]


def forget(n: int = 16) -> pd.DataFrame:
    frame = questions(n)
    frame.index = [100 + i for i in range(n)]  # a non-default index, as a filtered frame has
    return frame


def test_the_halves_of_the_fixture_questions():
    texts = questions(16)["question"].tolist()
    assert [i for i, q in enumerate(texts) if question_split(q) == "test"] == TEST_ROWS
    assert [i for i, q in enumerate(texts) if question_split(q) == "dev"] == DEV_ROWS


def test_the_pool_is_the_dev_half_and_the_scored_set_the_test_half():
    frame = forget()
    pool, scored = pool_and_scored(frame, None, seed=0)
    texts = questions(16)["question"].tolist()
    assert pool["question"].tolist() == [texts[i] for i in DEV_ROWS]
    assert scored["question"].tolist() == [texts[i] for i in TEST_ROWS]
    assert all(question_split(q) == "dev" for q in pool["question"])
    assert all(question_split(q) == "test" for q in scored["question"])
    assert not set(pool["question"]) & set(scored["question"])
    # Whole rows, renumbered from 0.
    assert list(pool.index) == list(range(9)) and list(scored.index) == list(range(7))
    assert pool.iloc[0].to_dict() == frame.iloc[0].to_dict()
    assert scored.iloc[-1].to_dict() == frame.iloc[15].to_dict()


def test_the_scored_set_is_a_seeded_subset_of_the_test_half():
    texts = questions(16)["question"].tolist()
    pool, scored = pool_and_scored(forget(), 3, seed=4)
    assert len(pool) == 9 and len(scored) == 3
    rows = [texts.index(q) for q in scored["question"]]
    assert set(rows) <= set(TEST_ROWS) and rows == sorted(rows)  # kept in order
    assert pool_and_scored(forget(), 3, seed=4)[1].equals(scored)
    # Asking for more than the test half has gives all of it.
    assert len(pool_and_scored(forget(), 50, seed=0)[1]) == 7


def test_no_test_half_question_is_refused():
    frame = forget()
    dev_only = frame.iloc[DEV_ROWS]
    with pytest.raises(UserError, match="no forget question is in it"):
        pool_and_scored(dev_only, None, seed=0)
    # A test half without a dev half is fine: an empty pool (only k=0 can run).
    pool, scored = pool_and_scored(frame.iloc[TEST_ROWS], None, seed=0)
    assert len(pool) == 0 and len(scored) == 7


def test_icl_attack_scores_each_k_for_each_model(tiny_model, gated_hook, monkeypatch):
    model, tokenizer = tiny_model
    contexts: list[list[str]] = []
    build = evaluation_run.build_requests

    def spy(frame, fmt, fewshot=None, suffix="", template="lm-eval"):
        requests = build(frame, fmt, fewshot, suffix, template)
        contexts.append([r.context for r in requests])
        return requests

    monkeypatch.setattr(evaluation_run, "build_requests", spy)
    lines: list[str] = []
    out = icl_attack(
        model,
        tokenizer,
        *pool_and_scored(forget(), 3, seed=0),
        {"baseline": None, "steered": gated_hook},
        ICLConfig(ks=(0, 1, 2), seed=0),
        EVAL,
        log=lines.append,
    )
    assert list(out.metrics) == ["baseline", "steered", "n", "pool"]
    assert out.metrics["n"] == 3 and out.metrics["pool"] == 9
    for name in ("baseline", "steered"):
        assert list(out.metrics[name]) == ["k=0", "k=1", "k=2"]
        assert list(out.accuracy[name]) == ["k=0", "k=1", "k=2"]
        for setting, fig in out.metrics[name].items():
            assert fig["acc"] in (0.0, 1 / 3, 2 / 3, 1.0)
            low, high = fig["acc_ci"]
            assert 0.0 <= low <= fig["acc"] <= high <= 1.0
            assert out.accuracy[name][setting]["n"] == 3
            if name == "baseline":
                assert fig["gate_share"] is None
            else:
                assert fig["gate_share"] in (0.0, 1 / 3, 2 / 3, 1.0)
    assert out.records == {}
    assert lines[0].startswith("in-context k=0 baseline: acc ")
    assert len(lines) == 6

    # Scored: 3 test-half questions; shown solved: only dev-half ones, k of them.
    texts = questions(16)["question"].tolist()
    assert len(contexts) == 6  # (k, model) pairs
    dev = {texts[i] for i in DEV_ROWS}
    test = {texts[i] for i in TEST_ROWS}
    for i, per_request in enumerate(contexts):
        k = (0, 1, 2)[i // 2]
        assert len(per_request) == 3
        for context in per_request:
            assert context.count("Question: ") == k + 1
            asked = context.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:")
            assert asked in test
            shown = [q for q in dev | test if q in context and q != asked]
            assert len(shown) == k and set(shown) <= dev


def test_more_shots_than_the_dev_half_has_are_refused(tiny_model):
    model, tokenizer = tiny_model
    with pytest.raises(UserError, match="10-shot needs 10 .* only 9 exist"):
        icl_attack(
            model,
            tokenizer,
            *pool_and_scored(forget(), None, seed=0),
            {"baseline": None},
            ICLConfig(ks=(10,)),
            EVAL,
            log=print,
        )


def test_the_steered_run_starts_where_the_baseline_kept_each_ks_rows(tiny_model, gated_hook):
    from sae_unlearn.attacks.family import KeptRows
    from tests.evaluation.helpers import block_calls

    model, tokenizer = tiny_model
    halves = pool_and_scored(forget(), 3, seed=0)
    cfg = ICLConfig(ks=(0, 2), seed=0)

    def run(hooks, rows=None):
        return icl_attack(model, tokenizer, *halves, hooks, cfg, EVAL, log=print, rows=rows)

    rows = KeptRows(block=0)  # the hook sits on block 1
    baseline = run({"baseline": None}, rows)
    assert sorted(rows.kept()) == ["k=0", "k=2"]
    plain = run({"steered": gated_hook})
    calls, steered = block_calls(
        model, 0, run, {"steered": gated_hook}, KeptRows(None, rows.kept())
    )
    assert steered.metrics == plain.metrics and steered.accuracy == plain.accuracy
    assert calls == 2 * 2  # per k: the shared prefix (the shots) and the checked row
    assert baseline.metrics["baseline"] != {}
