import math

import torch

from sae_unlearn.attacks.fewshot import draw_shots
from sae_unlearn.evaluation.packing import common_prefix
from sae_unlearn.evaluation.requests import build_requests, encode_requests
from sae_unlearn.evaluation.run import maybe_steer
from sae_unlearn.evaluation.scoring import (
    Targets,
    continuation_logprobs,
    score_sequences,
    sequence_logprobs,
)
from sae_unlearn.models import load_model
from tests.evaluation.helpers import gated_on_one_latent, questions, reference_loglik


def test_sequence_logprobs_by_hand():
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, math.log(5.0)]])
    targets = Targets(tokens=[0, 3, 0], owners=[0, 1, 2])
    sums, greedy = sequence_logprobs(logits, targets, 3, where=torch.tensor([0, 1, 1]))
    expected = [1 - math.log(math.e + 3), math.log(5 / 8), math.log(1 / 8)]
    torch.testing.assert_close(sums, torch.tensor(expected))
    assert greedy.tolist() == [True, True, False]
    # One row per target by default; a sequence's tokens add up.
    two = Targets(tokens=[0, 3], owners=[0, 0])
    sums, greedy = sequence_logprobs(logits, two, 1)
    torch.testing.assert_close(sums, torch.tensor([expected[0] + expected[1]]))
    assert greedy.tolist() == [True]


def test_targets_point_at_the_token_before_each_continuation_token():
    targets = Targets()
    targets.add(0, n_context=3, continuation=[7, 8], row=2)
    targets.add(1, n_context=2, continuation=[9], nodes=[10, 11, 12])
    assert targets.rows == [2, 2, 0]
    assert targets.cols == [2, 3, 11]
    assert targets.tokens == [7, 8, 9] and targets.owners == [0, 0, 1]


def test_dense_and_packed_match_a_plain_forward(tiny_model):
    model, tokenizer = tiny_model
    requests = build_requests(questions(3), "cloze", fewshot=questions(2, "geography", 4))
    pairs = encode_requests(tokenizer, requests)
    ref = [
        reference_loglik(model, tokenizer, r.context, c) for r in requests for c in r.continuations
    ]
    dense = continuation_logprobs(model, pairs, tokenizer.pad_token_id, batch_size=5)
    for max_tokens in (8, 4096):
        packed = score_sequences(model, pairs, max_tokens=max_tokens)
        torch.testing.assert_close(
            torch.tensor([s for s, _ in packed]), torch.tensor(ref), atol=1e-4, rtol=0
        )
        assert [g for _, g in packed] == [g for _, g in dense]
    torch.testing.assert_close(
        torch.tensor([s for s, _ in dense]), torch.tensor(ref), atol=1e-4, rtol=0
    )


def test_packed_scoring_under_a_gate_that_opens_in_some_branches(tiny_model, gated_hook):
    model, tokenizer = tiny_model
    requests = build_requests(questions(5), "cloze")
    seqs = encode_requests(tokenizer, requests)
    with maybe_steer(model, gated_hook), torch.no_grad():
        opened = []
        for ctx, cont in seqs:
            model(input_ids=torch.tensor([ctx + cont]))
            opened.append(bool(gated_hook.last_open[0]))
        ref = continuation_logprobs(model, seqs, tokenizer.pad_token_id)
        got = score_sequences(model, seqs, max_tokens=4096)  # all in one packed row
    # Some sequences open the gate and others do not: a gate leaking along the packed
    # row, instead of following each token's ancestors, would steer the others too.
    assert 0 < sum(opened) < len(seqs)
    torch.testing.assert_close(
        torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in ref]), atol=1e-4, rtol=0
    )


def test_shared_scoring_small_rows_and_gemma2(tiny_gemma2_dir):
    model, tokenizer = load_model(str(tiny_gemma2_dir), device="cpu")
    requests = build_requests(questions(4), "cloze", fewshot=draw_shots(questions(3), 2, 0))
    seqs = encode_requests(tokenizer, requests)
    ref = continuation_logprobs(model, seqs, tokenizer.pad_token_id)
    for max_tokens in (8, 4096):  # one sequence per row, and everything in one row
        got = score_sequences(model, seqs, max_tokens=max_tokens)
        assert [g for _, g in got] == [g for _, g in ref]
        torch.testing.assert_close(
            torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in ref]), atol=1e-4, rtol=0
        )


def test_packed_scoring_after_a_shared_prefix_under_counted_gates(tiny_model):
    # Few-shot examples form a prefix common to every sequence, run once into a KV cache:
    # the window and token-share gates must carry its counts into the packed rows.
    from sae_unlearn.steering import ClampHook, Gate, gated_clamp
    from tests.evaluation.helpers import tiny_sae

    model, tokenizer = tiny_model
    requests = build_requests(questions(4), "cloze", fewshot=draw_shots(questions(3), 1, 0))
    seqs = encode_requests(tokenizer, requests)
    with torch.no_grad():
        plain = continuation_logprobs(model, seqs, tokenizer.pad_token_id)
    # Picked from this model's activations: at 15.5 the prefix (89 tokens) triggers 7 times,
    # so the share near the scored tokens stays under tau = 0.12, where counts restarted in
    # the packed rows would exceed it (the window's carry is checked in tests/steering).
    cases = ((Gate("window", window=60), 16.0), (Gate("token_share", tau=0.12), 15.5))
    for gate, threshold in cases:
        hook = ClampHook(
            tiny_sae(), gated_clamp(1, list(range(0, 64, 2)), [threshold] * 32, -20.0, gate=gate)
        )
        with maybe_steer(model, hook), torch.no_grad():
            ref = continuation_logprobs(model, seqs, tokenizer.pad_token_id)
            got = score_sequences(model, seqs, max_tokens=4096)
        moved = [abs(r[0] - p[0]) > 1e-3 for r, p in zip(ref, plain, strict=True)]
        assert any(moved), gate  # the gate opened somewhere: the comparison can fail
        torch.testing.assert_close(
            torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in ref]), atol=1e-4, rtol=0
        )


def test_reused_unsteered_scores_are_the_steered_ones():
    from sae_unlearn.evaluation.gates import GateRecorder
    from sae_unlearn.evaluation.scoring import Unsteered
    from tests.evaluation.helpers import narrow_window_gemma2
    from tests.tiny import tiny_tokenizer

    model, tokenizer = narrow_window_gemma2(), tiny_tokenizer()
    seqs = encode_requests(tokenizer, build_requests(questions(8), "cloze"))
    hook = gated_on_one_latent()
    for max_tokens in (4096, 40):  # one row, and several
        with torch.no_grad():
            plain = score_sequences(model, seqs, max_tokens=max_tokens)
        with maybe_steer(model, hook), torch.no_grad():
            whole = GateRecorder(hook, len(seqs))
            steered = score_sequences(model, seqs, max_tokens=max_tokens, recorder=whole)
            split = GateRecorder(hook, len(seqs))
            unsteered = Unsteered([s for s, _ in plain], "baseline.parquet")
            got = score_sequences(
                model, seqs, max_tokens=max_tokens, recorder=split, unsteered=unsteered
            )
        reused = [i for i, (_, greedy) in enumerate(got) if greedy is None]
        moved = [i for i in range(len(seqs)) if abs(steered[i][0] - plain[i][0]) > 1e-3]
        assert len(reused) == 12 and len(moved) == 20, max_tokens
        # Where the hook edits nothing, the steered score is the unsteered one to the bit
        # (what makes reuse exact), and the reused value is that score.
        assert all(got[i][0] == steered[i][0] == plain[i][0] for i in reused)
        rest = [i for i in range(len(seqs)) if i not in reused]
        torch.testing.assert_close(
            torch.tensor([got[i][0] for i in rest]),
            torch.tensor([steered[i][0] for i in rest]),
            atol=1e-5,
            rtol=0,
        )
        assert [got[i][1] for i in rest] == [steered[i][1] for i in rest]
        for i in range(len(seqs)):  # the same gate marks either way
            assert (split.sequence(i) == whole.sequence(i)).all()


def test_reused_scores_of_another_model_are_refused():
    import pytest

    from sae_unlearn.errors import UserError
    from sae_unlearn.evaluation.gates import GateRecorder
    from sae_unlearn.evaluation.scoring import Unsteered
    from tests.evaluation.helpers import narrow_window_gemma2
    from tests.tiny import tiny_tokenizer

    model, tokenizer = narrow_window_gemma2(), tiny_tokenizer()
    seqs = encode_requests(tokenizer, build_requests(questions(8), "cloze"))
    other = narrow_window_gemma2(seed=1)
    with torch.no_grad():
        elsewhere = score_sequences(other, seqs)
    hook = gated_on_one_latent()
    with maybe_steer(model, hook), torch.no_grad(), pytest.raises(UserError) as error:
        unsteered = Unsteered([s for s, _ in elsewhere], "runs/other/retain.parquet")
        score_sequences(model, seqs, recorder=GateRecorder(hook, len(seqs)), unsteered=unsteered)
    assert "runs/other/retain.parquet" in str(error.value)
    assert "another model, format or template" in str(error.value)


def test_a_hook_that_edits_the_shared_prefix_leaves_nothing_to_reuse():
    from sae_unlearn.evaluation.gates import GateRecorder
    from sae_unlearn.evaluation.scoring import Unsteered
    from tests.evaluation.helpers import narrow_window_gemma2
    from tests.tiny import tiny_tokenizer

    model, tokenizer = narrow_window_gemma2(), tiny_tokenizer()
    # Few-shot examples form a prefix every sequence reads; these open the gate in it.
    requests = build_requests(questions(4, offset=3), "cloze", fewshot=questions(3))
    seqs = encode_requests(tokenizer, requests)
    full = [list(ctx) + list(cont) for ctx, cont in seqs]
    shared = min(common_prefix(full), min(len(ctx) for ctx, _ in seqs) - 1)
    hook = gated_on_one_latent()
    with torch.no_grad():
        plain = score_sequences(model, seqs)
    with maybe_steer(model, hook), torch.no_grad():
        steered = score_sequences(model, seqs, recorder=GateRecorder(hook, len(seqs)))
        recorder = GateRecorder(hook, len(seqs))
        unsteered = Unsteered([s for s, _ in plain], "baseline")
        got = score_sequences(model, seqs, recorder=recorder, unsteered=unsteered)
    assert shared > 200 and all(recorder.sequence(i)[:shared].any() for i in range(len(seqs)))
    assert [g for _, g in got] == [g for _, g in steered]  # none reused
    assert [s for s, _ in got] == [s for s, _ in steered]
