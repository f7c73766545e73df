"""The unsteered rows' residual stream, kept by the baseline and started from by the steered
scoring: the same scores to the bit, the blocks below skipped, and residuals of other rows or
another model refused."""

import pytest
import torch

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.gates import GateRecorder
from sae_unlearn.evaluation.requests import build_requests, encode_requests
from sae_unlearn.evaluation.residuals import (
    RowResiduals,
    read_residuals,
    read_role_residuals,
    residuals_path,
    write_residuals,
)
from sae_unlearn.evaluation.run import maybe_steer
from sae_unlearn.evaluation.scoring import Unsteered, score_sequences
from sae_unlearn.models import decoder_layers
from tests.evaluation.helpers import (
    block_calls,
    gated_on_one_latent,
    narrow_window_gemma2,
    questions,
)
from tests.tiny import tiny_tokenizer

HOOK_BLOCK = 2  # gated_on_one_latent's


def sequences(fewshot: bool = False):
    shots = questions(1, "history", 4) if fewshot else None  # leaves the gate shut
    return encode_requests(tiny_tokenizer(), build_requests(questions(8), "cloze", fewshot=shots))


def baseline(model, seqs, max_tokens: int, block: int = HOOK_BLOCK - 1):
    kept = RowResiduals(block, "results/baseline/forget.residuals.safetensors")
    with torch.no_grad():
        plain = score_sequences(model, seqs, max_tokens=max_tokens, keep=kept)
    return plain, kept


def steered(model, seqs, max_tokens: int, plain, kept: RowResiduals | None, hook, reuse=True):
    """Steered scores and gate marks; with `plain`'s scores where the hook edits nothing
    (`reuse`), and starting from `kept`."""
    recorder = GateRecorder(hook, len(seqs))
    unsteered = Unsteered([s for s, _ in plain], "results/baseline/forget.parquet")
    with maybe_steer(model, hook), torch.no_grad():
        got = score_sequences(
            model,
            seqs,
            max_tokens=max_tokens,
            recorder=recorder,
            unsteered=unsteered if reuse else None,
            start=kept,
        )
    return got, recorder


@pytest.mark.parametrize("fewshot", [False, True])
def test_steered_rows_started_from_kept_residuals_score_the_same_bits(fewshot):
    model = narrow_window_gemma2()
    seqs = sequences(fewshot)
    hook = gated_on_one_latent()
    for max_tokens in (4096, 40):  # one packed row, and several
        plain, kept = baseline(model, seqs, max_tokens)
        assert all(len(t) == len(h) for t, h in zip(kept.tokens, kept.hidden, strict=True))
        whole, whole_gates = steered(model, seqs, max_tokens, plain, None, hook)
        first, (got, gates) = block_calls(
            model, 0, steered, model, seqs, max_tokens, plain, kept, hook
        )
        assert got == whole, max_tokens  # every score and greedy flag, to the bit
        for i in range(len(seqs)):
            assert (gates.sequence(i) == whole_gates.sequence(i)).all()
        # Block 0 ran for the prefix all sequences share (BOS at least, the few-shot examples
        # too) and for the one row checked against the kept residuals, not for every row.
        assert first == 2 and len(kept.tokens) >= (1 if max_tokens == 4096 else 3)
        assert sum(greedy is None for _, greedy in got) > 0  # reuse of scores still works


def test_residuals_of_other_rows_are_refused():
    model = narrow_window_gemma2()
    seqs = sequences()
    hook = gated_on_one_latent()
    plain, kept = baseline(model, seqs, max_tokens=40)
    with pytest.raises(UserError) as error:  # packed into other rows
        steered(model, seqs, 4096, plain, kept, hook)
    assert "results/baseline/forget.residuals.safetensors" in str(error.value)
    assert f"holds {len(kept.tokens)} packed rows, but these questions pack into 1" in str(
        error.value
    )
    kept.tokens[1] = kept.tokens[1].flip(0)
    with pytest.raises(UserError, match="packed row 1 holds other tokens"):
        steered(model, seqs, 40, plain, kept, hook)


def test_residuals_of_another_model_are_refused():
    seqs = sequences()
    model = narrow_window_gemma2()
    plain, _ = baseline(model, seqs, max_tokens=40)
    _, kept = baseline(narrow_window_gemma2(seed=1), seqs, max_tokens=40)
    with pytest.raises(UserError) as error:  # this model's scores, another one's residuals
        steered(model, seqs, 40, plain, kept, gated_on_one_latent())
    assert "computed by another model" in str(error.value)
    assert "rerun evaluate-baseline" in str(error.value)


def test_residuals_kept_at_or_above_the_hooks_block_are_not_used():
    model = narrow_window_gemma2()
    seqs = sequences()
    hook = gated_on_one_latent()
    plain, kept = baseline(model, seqs, 40, block=HOOK_BLOCK)
    kept.hidden = [h + 1.0 for h in kept.hidden]  # would move every score if it were used
    whole, _ = steered(model, seqs, 40, plain, None, hook)
    assert steered(model, seqs, 40, plain, kept, hook)[0] == whole


def test_a_hook_on_or_below_the_kept_block_may_not_record():
    model = narrow_window_gemma2()
    with maybe_steer(model, gated_on_one_latent()), pytest.raises(ValueError, match="a hook edits"):
        score_sequences(model, sequences(), keep=RowResiduals(HOOK_BLOCK))


def test_written_residuals_read_back_and_a_damaged_file_is_refused(tmp_path):
    model = narrow_window_gemma2()
    _, kept = baseline(model, sequences(), max_tokens=40)
    path = residuals_path(tmp_path, "forget")
    write_residuals(path, kept)
    back = read_residuals(path)
    assert back.block == kept.block and back.source == str(path)
    assert [t.tolist() for t in back.tokens] == [t.tolist() for t in kept.tokens]
    assert all(torch.equal(a, b) for a, b in zip(back.hidden, kept.hidden, strict=True))
    assert list(read_role_residuals(tmp_path, ["forget", "retain"])) == ["forget"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError) as error:
        read_residuals(path)
    assert str(path) in str(error.value) and "not a residuals file" in str(error.value)


def test_rows_start_from_kept_residuals_without_reused_scores_and_after_an_edited_prefix():
    # Forget-topic few-shot examples open the gate in the shared prefix: no score can be
    # reused, but below the hook's block every row is still the unsteered model's.
    model = narrow_window_gemma2()
    seqs = encode_requests(
        tiny_tokenizer(), build_requests(questions(4, offset=3), "cloze", fewshot=questions(3))
    )
    hook = gated_on_one_latent()
    plain, kept = baseline(model, seqs, max_tokens=40)
    assert len(kept.tokens) >= 2
    for reuse in (True, False):
        whole, whole_gates = steered(model, seqs, 40, plain, None, hook, reuse=reuse)
        first, (got, gates) = block_calls(
            model, 0, steered, model, seqs, 40, plain, kept, hook, reuse=reuse
        )
        assert got == whole and all(greedy is not None for _, greedy in got)
        assert first == 2  # the prefix and the checked row
        for i in range(len(seqs)):
            assert (gates.sequence(i) == whole_gates.sequence(i)).all()


def test_rows_start_from_block_0_where_a_hook_edits_below_the_kept_block():
    from sae_unlearn.attacks.whitebox import residual_added

    model = narrow_window_gemma2()
    seqs = sequences()
    hook = gated_on_one_latent()
    plain, kept = baseline(model, seqs, max_tokens=40)
    delta = torch.full((model.config.hidden_size,), 0.5)
    with residual_added(model, 0, delta):  # after block 0, below the kept block 1
        whole, _ = steered(model, seqs, 40, plain, None, hook, reuse=False)
        first, (got, _) = block_calls(
            model, 0, steered, model, seqs, 40, plain, kept, hook, reuse=False
        )
    assert got == whole and first == len(kept.tokens) + 1  # every row from block 0
    assert got != steered(model, seqs, 40, plain, None, hook, reuse=False)[0]


def test_transformers_own_recording_hooks_do_not_stop_the_start():
    # Asking once for hidden states leaves transformers 5's recording hooks on every layer.
    model = narrow_window_gemma2()
    with torch.no_grad():
        model(input_ids=torch.tensor([[2, 40, 41]]), output_hidden_states=True)
    assert all(block._forward_hooks for block in decoder_layers(model))
    seqs = sequences()
    hook = gated_on_one_latent()
    plain, kept = baseline(model, seqs, max_tokens=40)
    whole, _ = steered(model, seqs, 40, plain, None, hook)
    first, (got, _) = block_calls(model, 0, steered, model, seqs, 40, plain, kept, hook)
    assert got == whole and first == 2
