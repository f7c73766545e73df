import pytest
import torch

from sae_unlearn.attacks.gcg import GCGConfig, candidate_losses, run_gcg, token_gradient
from sae_unlearn.attacks.gcg_tokens import allowed_token_mask, gcg_prompts
from sae_unlearn.evaluation.run import maybe_steer
from tests.evaluation.helpers import questions

GCG = GCGConfig(num_steps=4, search_width=12, topk=12, seed=3, optim_str_init="x x x x")


def test_gcg_loss_falls_and_suffix_round_trips(tiny_model):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(2), "cloze")
    result = run_gcg(model, tokenizer, prompts, GCG)
    assert len(result.losses) == GCG.num_steps
    assert result.best_loss < result.init_loss
    assert result.best_loss == pytest.approx(min(result.losses))
    # The reported loss is the loss of the returned suffix, rescored from its text.
    ids = torch.tensor([result.best_ids])
    assert float(candidate_losses(model, prompts, ids)) == pytest.approx(result.best_loss, abs=1e-4)
    assert float(candidate_losses(model, prompts, ids, use_prefix_cache=False)) == pytest.approx(
        result.best_loss, abs=1e-4
    )
    text = " " + result.best_string
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == result.best_ids
    allowed = allowed_token_mask(tokenizer, model.get_input_embeddings().num_embeddings, False)
    assert all(allowed[i] for i in result.best_ids)


def test_gcg_same_seed_same_suffix(tiny_model, hook):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(2), "letter")
    with maybe_steer(model, hook):
        a = run_gcg(model, tokenizer, prompts, GCG)
        b = run_gcg(model, tokenizer, prompts, GCG)
    assert a.best_ids == b.best_ids and a.losses == b.losses
    rng_state = torch.get_rng_state()
    run_gcg(model, tokenizer, prompts, GCG)
    assert torch.equal(rng_state, torch.get_rng_state())  # the global RNG is left alone


def test_gradient_flows_through_the_steering_hook(tiny_model, hook):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(2), "cloze")
    ids = torch.tensor(tokenizer(" x x x x", add_special_tokens=False)["input_ids"])
    plain, plain_loss = token_gradient(model, prompts, ids)
    with maybe_steer(model, hook):
        steered, steered_loss = token_gradient(model, prompts, ids)
    vocab = model.get_input_embeddings().num_embeddings
    assert steered.shape == (len(ids), vocab)
    assert steered.abs().sum() > 0 and torch.isfinite(steered).all()
    assert not torch.allclose(plain, steered)  # the hook is on the gradient's path
    assert steered_loss != pytest.approx(plain_loss)
    with maybe_steer(model, hook):
        before = float(candidate_losses(model, prompts, ids[None]))
    assert before == pytest.approx(steered_loss, abs=1e-4)


def test_gcg_loss_is_the_mean_target_cross_entropy(tiny_model):
    model, tokenizer = tiny_model
    prompts = gcg_prompts(tokenizer, questions(2), "letter")
    ids = torch.tensor(tokenizer(" x x", add_special_tokens=False)["input_ids"])
    expected = []
    with torch.no_grad():
        for p in prompts:
            seq = p.before + ids.tolist() + p.after + p.target
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0], -1)
            start = len(seq) - len(p.target)
            nll = [-logprobs[start + t - 1, tok].item() for t, tok in enumerate(p.target)]
            expected.append(sum(nll) / len(nll))
    _, loss = token_gradient(model, prompts, ids)
    assert loss == pytest.approx(sum(expected) / len(expected), abs=1e-4)
