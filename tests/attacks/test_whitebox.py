"""White-box attacks: the soft prompt and the residual vector, through the clamp hook."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch

from sae_unlearn.attacks.gcg import target_loss
from sae_unlearn.attacks.gcg_tokens import gcg_prompts
from sae_unlearn.attacks.whitebox import (
    WhiteboxConfig,
    check_pool,
    embeddings_replaced,
    prompt_logits,
    recovery,
    residual_added,
    residual_attack,
    scored_with_soft_prompt,
    soft_prompt_attack,
    typical_residual_norm,
    unused_token,
    whitebox_attack,
)
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.prompts import answer_continuations, split_at_suffix
from sae_unlearn.evaluation.requests import encode_pair, encode_prompt
from sae_unlearn.evaluation.scoring import continuation_logprobs
from sae_unlearn.models import capture_residuals
from sae_unlearn.steering import steer
from tests.evaluation.helpers import questions

EVAL = EvalConfig(format="cloze", batch_size=4, bootstrap=100)


def test_gradients_reach_the_soft_prompt_and_the_residual_vector_through_the_hook(tiny_model, hook):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(3), "cloze")
    embedding = model.get_input_embeddings()
    with steer(model, hook), torch.enable_grad():
        soft = embedding(torch.tensor([[5, 6, 7]]))[0].detach().requires_grad_(True)
        target_loss(model, prompts, soft).backward()
        delta = torch.zeros(embedding.embedding_dim, requires_grad=True)
        with residual_added(model, 0, delta):
            target_loss(model, prompts, None).backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    assert delta.grad is not None and delta.grad.abs().sum() > 0


def test_residual_added_adds_the_vector_after_the_block(tiny_model):
    model, _ = tiny_model
    ids = torch.tensor([[2, 10, 11, 12]])
    delta = torch.linspace(-1, 1, model.config.hidden_size)

    def block_output(add: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad(), ExitStack() as stack:
            if add:
                stack.enter_context(residual_added(model, 0, delta))
            captured = stack.enter_context(capture_residuals(model, [0]))  # sees the sum
            logits = model(input_ids=ids).logits
            return captured[0], logits

    plain, plain_logits = block_output(False)
    moved, moved_logits = block_output(True)
    torch.testing.assert_close(moved, plain + delta)
    assert not torch.allclose(moved_logits, plain_logits)  # it reaches the later blocks
    torch.testing.assert_close(block_output(False)[0], plain)  # and is gone after


def test_soft_prompt_of_token_embeddings_scores_as_those_tokens(tiny_model, gated_hook):
    """The placeholder path (packed, embeddings swapped in) against plain dense scoring of
    the prompts with the real suffix ids, steered by a gated clamp."""
    model, tokenizer = tiny_model
    qs = questions(3)
    suffix_ids = [40, 41, 42]
    soft = model.get_input_embeddings()(torch.tensor([suffix_ids]))[0].detach()
    pairs = []
    for row in qs.itertuples(index=False):
        before, after = split_at_suffix(row.question, list(row.choices), row.subject, "cloze")
        for continuation in answer_continuations(list(row.choices), "cloze"):
            ctx, cont = encode_pair(tokenizer, after, continuation)
            pairs.append((encode_prompt(tokenizer, before) + suffix_ids + ctx[1:], cont))
    with torch.no_grad(), steer(model, gated_hook):
        expected = [s for s, _ in continuation_logprobs(model, pairs, 0, batch_size=4)]
        frame = scored_with_soft_prompt(model, tokenizer, qs, "cloze", soft, 512)
    got = [ll for lls in frame["loglik"] for ll in lls]
    assert got == pytest.approx(expected, abs=1e-4)


def test_embeddings_replaced_swaps_each_run_in_order(tiny_model):
    model, _ = tiny_model
    embedding = model.get_input_embeddings()
    soft = torch.arange(2 * embedding.embedding_dim, dtype=torch.float32).view(2, -1)
    ids = torch.tensor([[3, 99, 99, 4, 99, 99]])
    with torch.no_grad(), embeddings_replaced(model, 99, soft):
        out = embedding(ids)[0]
    plain = embedding(ids)[0].detach()
    torch.testing.assert_close(out[[1, 2, 4, 5]], soft[[0, 1, 0, 1]].to(out.dtype))
    torch.testing.assert_close(out[[0, 3]], plain[[0, 3]])


def test_attacks_lower_their_training_loss_and_the_residual_stays_in_its_ball(tiny_model, hook):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(4), "cloze")
    cfg = WhiteboxConfig(soft_steps=12, residual_steps=12, layer=0, soft_lr=0.2)
    with torch.no_grad():
        reference = torch.log_softmax(prompt_logits(model, prompts), dim=-1)
    with steer(model, hook):
        _, soft_losses = soft_prompt_attack(model, prompts, torch.full((5,), 7), cfg)
        delta, residual_losses = residual_attack(model, prompts, reference, 2.0, cfg)
    assert soft_losses[-1] < soft_losses[0]
    assert residual_losses[-1] < residual_losses[0]  # closer to the unsteered model
    assert float(delta.norm()) <= 2.0 + 1e-5


def test_prompt_logits_are_the_models_logits_at_every_position(tiny_model):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(2), "cloze")
    with torch.no_grad():
        got = prompt_logits(model, prompts)
        expected = torch.cat(
            [
                model(input_ids=torch.tensor([p.before + p.after + p.target])).logits[0]
                for p in prompts
            ]
        )
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_the_residual_attack_on_the_unsteered_model_has_nothing_to_recover(tiny_model):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(3), "cloze")
    cfg = WhiteboxConfig(residual_steps=3, layer=0)
    with torch.no_grad():
        reference = torch.log_softmax(prompt_logits(model, prompts), dim=-1)
    _, losses = residual_attack(model, prompts, reference, 1.0, cfg)
    assert losses[0] == pytest.approx(0.0, abs=1e-3)  # it starts at the reference


def test_unused_token_is_the_highest_id_no_sequence_holds():
    assert unused_token(10, [[9, 1], [8]], avoid={7}) == 6
    assert unused_token(10, [[1, 2]], avoid=set()) == 9


def test_recovery_by_hand():
    metrics = {
        "baseline": {"none": {"acc": 0.8}, "soft_prompt": {"acc": 0.9}},
        "steered": {
            "none": {"acc": 0.4},
            "soft_prompt": {"acc": 0.5},
            "residual_0.1": {"acc": 0.8},
        },
    }
    assert recovery(metrics) == pytest.approx({"soft_prompt": 0.25, "residual_0.1": 1.0})
    same = {
        "baseline": {"none": {"acc": 0.5}},
        "steered": {"none": {"acc": 0.5}, "x": {"acc": 0.6}},
    }
    assert recovery(same) == {"x": None}


def test_whitebox_attack_on_both_models(tiny_model, hook):
    model, tokenizer = tiny_model
    cfg = WhiteboxConfig(
        n_train=3, soft_tokens=4, soft_steps=2, layer=0, bounds=(0.1, 0.5), residual_steps=2
    )
    logged = []
    flags = [p.requires_grad for p in model.parameters()]
    out = whitebox_attack(
        model,
        tokenizer,
        questions(6),
        questions(4, offset=6),
        {"baseline": None, "steered": hook},
        cfg,
        EVAL,
        log=logged.append,
    )
    settings = ["none", "soft_prompt", "residual_0.1", "residual_0.5"]
    # the unsteered baseline has no clamp to recover from: no residual attack
    expected = {"baseline": settings[:2], "steered": settings}
    for name in ("baseline", "steered"):
        assert list(out.metrics[name]) == expected[name]
        assert all(0.0 <= fig["acc"] <= 1.0 for fig in out.metrics[name].values())
        losses = out.records["losses"][name].values()
        assert [len(v) for v in losses] == [2] * (len(expected[name]) - 1)
    assert out.metrics["n"] == 4 and out.metrics["n_train"] == 3
    assert [p.requires_grad for p in model.parameters()] == flags  # restored
    assert len(logged) == 6


def test_config_refusals():
    with pytest.raises(UserError, match="bounds must be positive"):
        WhiteboxConfig(bounds=(0.1, 0.0))
    with pytest.raises(UserError, match="n_train must be >= 1"):
        WhiteboxConfig(n_train=0)


def test_typical_residual_norm_leaves_out_bos_and_padding(tiny_model):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(3), "cloze")
    assert len({len(p.before) + len(p.after) + len(p.target) for p in prompts}) > 1  # padded
    norms = []
    with torch.no_grad():
        for p in prompts:  # one prompt at a time: no padding at all
            ids = torch.tensor([p.before + p.after + p.target])
            with capture_residuals(model, [0]) as captured:
                model(input_ids=ids)
            norms.append(captured[0][0, 1:].norm(dim=-1))
    expected = float(torch.cat(norms).median())
    assert typical_residual_norm(model, prompts, 0) == pytest.approx(expected, rel=1e-4)


def test_the_steered_gate_share_and_a_frozen_sae(tiny_model, gated_hook):
    model, tokenizer = tiny_model
    cfg = WhiteboxConfig(
        n_train=2, soft_tokens=2, soft_steps=1, layer=0, bounds=(0.1,), residual_steps=1
    )
    out = whitebox_attack(
        model,
        tokenizer,
        questions(4),
        questions(3, offset=4),
        {"steered": gated_hook},
        cfg,
        EVAL,
        log=lambda _m: None,
    )
    for fig in out.metrics["steered"].values():
        assert 0.0 <= fig["gate_share"] <= 1.0
    assert all(p.grad is None for p in gated_hook.parameters())


def test_too_few_dev_questions_for_n_train_are_refused():
    with pytest.raises(UserError, match="n_train=9, but the dev half .* holds 4"):
        check_pool(questions(4), 9)
