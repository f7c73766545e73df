"""Relearning by fine-tuning: its own copy of the model, passages, and the loss it lowers."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.attacks.relearn import (
    RelearnConfig,
    forget_passages,
    relearn_attack,
    trainable_copy,
)
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from tests.evaluation.helpers import questions
from tests.tiny import TRAINING_TEXT

EVAL = EvalConfig(format="cloze", batch_size=4, bootstrap=100)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_passages_are_seeded_non_overlapping_chunks(tiny_model):
    _, tokenizer = tiny_model
    docs = TRAINING_TEXT[:4]
    ids = [
        [tokenizer.bos_token_id] + tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs
    ]
    chunks = [i[s : s + 4] for i in ids for s in range(0, len(i) - 3, 4)]
    got = forget_passages(tokenizer, docs, 3, 4, seed=1)
    assert got.shape == (3, 4)
    assert all(row.tolist() in chunks for row in got)
    assert torch.equal(got, forget_passages(tokenizer, docs, 3, 4, seed=1))
    with pytest.raises(UserError, match="fewer than attack.relearn.n_passages=999"):
        forget_passages(tokenizer, docs, 999, 4, seed=1)


@pytest.mark.parametrize("method", ["lora", "top_layers"])
def test_fine_tuning_changes_only_its_own_copy(tiny_model, method):
    model, _ = tiny_model
    before = state(model)
    tuned, params = trainable_copy(model, RelearnConfig(method=method, top_layers=1))
    assert params and all(p.requires_grad for p in params)
    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    after = state(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    if method == "lora":
        assert all("lora_" in n for n, p in tuned.named_parameters() if p.requires_grad)
    else:
        trained = {
            n.split(".layers.")[1].split(".")[0]
            for n, p in tuned.named_parameters()
            if p.requires_grad
        }
        assert trained == {str(len(model.model.layers) - 1)}


def test_relearning_lowers_the_training_loss_with_the_hook_attached(tiny_model, hook):
    model, tokenizer = tiny_model
    before = state(model)
    hook_flags = [p.requires_grad for p in hook.parameters()]
    passages = forget_passages(tokenizer, TRAINING_TEXT[:6], 4, 8, seed=0)
    cfg = RelearnConfig(n_passages=4, seq_len=8, batch_size=4, steps=6, eval_every=3, lr=1e-2)
    out = relearn_attack(
        model,
        tokenizer,
        passages,
        questions(3),
        questions(3, "geography", offset=3),
        {"baseline": None, "steered": hook},
        cfg,
        EVAL,
        log=lambda _m: None,
    )
    for name in ("baseline", "steered"):
        assert list(out.metrics[name]) == ["step=0", "step=3", "step=6"]
        for fig in out.metrics[name].values():
            assert 0.0 <= fig["acc"] <= 1.0 and 0.0 <= fig["retain_acc"] <= 1.0
        losses = out.records["losses"][name]
        assert len(losses) == 6 and losses[-1] < losses[0]  # every step sees all 4 passages
    assert all(torch.equal(v, state(model)[k]) for k, v in before.items())
    assert [p.requires_grad for p in hook.parameters()] == hook_flags  # frozen, then restored
    assert all(p.grad is None for p in hook.parameters())


def test_config_refusals():
    with pytest.raises(UserError, match="attack.relearn.method 'full'"):
        RelearnConfig(method="full")
    with pytest.raises(UserError, match="eval_every must be >= 1"):
        RelearnConfig(eval_every=0)
    with pytest.raises(UserError, match="top_layers must be >= 1"):
        RelearnConfig(method="top_layers", top_layers=0)  # blocks[-0:] would train them all
    with pytest.raises(UserError, match="steps must be >= 0"):
        RelearnConfig(steps=-1)
