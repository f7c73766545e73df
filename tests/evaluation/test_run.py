import numpy as np
import pytest
import torch

from sae_unlearn.attacks.fewshot import draw_shots
from sae_unlearn.data.splits import question_split
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.requests import build_requests
from sae_unlearn.evaluation.run import (
    evaluate_questions,
    evaluate_sets,
    maybe_steer,
)
from sae_unlearn.models import load_model
from sae_unlearn.steering import ClampHook, gated_clamp
from tests.evaluation.helpers import (
    QUESTIONS,
    gated_on_one_latent,
    questions,
    reference_loglik,
    tiny_sae,
)


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_gemma2_dir"])
def test_batched_scorer_agrees_with_unbatched_reference(fmt, fixture, request):
    model, tokenizer = load_model(str(request.getfixturevalue(fixture)), device="cpu")
    results = evaluate_questions(model, tokenizer, QUESTIONS, EvalConfig(format=fmt, batch_size=3))
    requests = build_requests(QUESTIONS, fmt)
    for row, req in zip(results.itertuples(), requests, strict=True):
        ref = [reference_loglik(model, tokenizer, req.context, c) for c in req.continuations]
        np.testing.assert_allclose(row.loglik, ref, atol=1e-4, rtol=0)
        assert row.chosen == int(np.argmax(ref))
        norm = np.asarray(ref) / np.asarray(req.choice_chars)
        assert row.chosen_norm == int(np.argmax(norm))


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
@pytest.mark.parametrize("steered", [False, True, "gated", "gated_in_prefix"])
def test_shared_scoring_matches_library(tiny_model, hook, gated_hook, fmt, steered):
    model, tokenizer = tiny_model
    if steered == "gated":
        hook = gated_hook
    elif steered == "gated_in_prefix":
        # At 8 the gate opens within the shared few-shot prefix, which carries it open.
        hook = ClampHook(tiny_sae(), gated_clamp(1, list(range(0, 64, 2)), [8.0] * 32, -20.0))
    forget, retain = questions(5), questions(6, "geography", offset=3)
    # 4 letter-format shots run past the tiny model's 64-token sliding window.
    shots = draw_shots(retain, 4, seed=0)
    cfg = EvalConfig(format=fmt, batch_size=4)
    with maybe_steer(model, hook if steered else None):
        ref = evaluate_questions(model, tokenizer, forget, cfg, fewshot=shots, suffix="x y")
        got = evaluate_questions(
            model, tokenizer, forget, cfg, fewshot=shots, suffix="x y", packed=True
        )
    torch.testing.assert_close(
        torch.tensor(got["loglik"].tolist()),
        torch.tensor(ref["loglik"].tolist()),
        atol=1e-4,
        rtol=0,
    )
    assert got["correct"].tolist() == ref["correct"].tolist()


def test_evaluate_sets_steers_every_set(tiny_model, hook):
    model, tokenizer = tiny_model
    sets = {"forget": questions(3), "retain": questions(2, "geography", offset=5)}
    cfg = EvalConfig(format="cloze", batch_size=4, bootstrap=20)
    plain, metrics = evaluate_sets(model, tokenizer, sets, cfg)
    steered, _ = evaluate_sets(model, tokenizer, sets, cfg, hook=hook)
    assert list(metrics) == ["format", "forget", "retain"] and metrics["format"] == "cloze"
    assert metrics["forget"]["n"] == 3 and metrics["retain"]["n"] == 2
    assert metrics["retain"]["acc"] == pytest.approx(plain["retain"]["correct"].mean())
    for role in sets:
        assert plain[role]["loglik"].tolist() != steered[role]["loglik"].tolist()
        halves = [question_split(q) for q in sets[role]["question"]]
        assert plain[role]["split"].tolist() == halves
        assert metrics[role]["dev"].get("n") == halves.count("dev")
        assert metrics[role]["test"].get("n") == halves.count("test")


def test_evaluate_sets_takes_the_baseline_where_the_hook_edits_nothing():
    from sae_unlearn.errors import UserError
    from tests.evaluation.helpers import narrow_window_gemma2
    from tests.tiny import tiny_tokenizer

    model, tokenizer = narrow_window_gemma2(), tiny_tokenizer()
    sets = {"forget": questions(8), "retain": questions(5, "geography", offset=2)}
    cfg = EvalConfig(format="cloze", batch_size=4, bootstrap=20)
    plain, _ = evaluate_sets(model, tokenizer, sets, cfg)
    hook = gated_on_one_latent()
    steered, metrics = evaluate_sets(model, tokenizer, sets, cfg, hook=hook)
    baseline = {role: (frame, f"baseline/{role}.parquet") for role, frame in plain.items()}
    got, got_metrics = evaluate_sets(model, tokenizer, sets, cfg, hook=hook, baseline=baseline)
    assert got_metrics == metrics
    counts = []
    for role in sets:
        frame = got[role]
        assert frame.drop(columns="loglik").equals(steered[role].drop(columns="loglik"))
        np.testing.assert_allclose(
            np.stack(frame["loglik"]), np.stack(steered[role]["loglik"]), atol=1e-5, rtol=0
        )
        closed = ~frame["gate_opened"].to_numpy(bool)
        counts.append((closed.sum(), len(frame)))
        for mine, theirs in zip(
            frame["loglik"][closed], plain[role]["loglik"][closed], strict=True
        ):
            assert list(mine) == list(theirs)
    assert counts == [(3, 8), (0, 5)]  # some questions left alone, some steered
    # A baseline of other questions' shapes is refused with its file and row.
    short = plain["retain"].assign(loglik=[ll[:3] for ll in plain["retain"]["loglik"]])
    with pytest.raises(UserError, match=r"baseline/retain.parquet row 1 has 3 log-likelihoods"):
        evaluate_sets(
            model,
            tokenizer,
            sets,
            cfg,
            hook=hook,
            baseline={"retain": (short, "baseline/retain.parquet")},
        )
