import json
import math

import pandas as pd
import pytest
import torch
import yaml
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.attacks import (
    GCGConfig,
    allowed_token_mask,
    candidate_losses,
    deterministic_subset,
    draw_shots,
    evaluate_shared,
    gcg_prompts,
    greedy_continuations,
    maybe_steer,
    prompt_texts,
    run_gcg,
    score_sequences,
    token_gradient,
)
from sae_unlearn.evaluation import (
    EvalConfig,
    build_requests,
    continuation_logprobs,
    encode_pair,
    evaluate_questions,
)
from sae_unlearn.models import load_model
from sae_unlearn.steering import ClampHook, clamp_prime, gated_clamp, write_clamp_yaml

D_IN = 32  # hidden size of tests.tiny models
WORDS = ["replicate", "divide", "bind", "kill", "spread", "mutate", "infect", "grow"]


def questions(n: int, subject: str = "virology", offset: int = 0) -> pd.DataFrame:
    rows = []
    for i in range(n):
        w = WORDS[(i + offset) % len(WORDS)]
        rows.append(
            {
                "question": f"In {subject}, what do viruses {w} in cells number {i + offset}?",
                "choices": [w, "bacteria", "the cell", "Paris"],
                "answer": i % 4,
                "subject": subject,
            }
        )
    return pd.DataFrame(rows)


def tiny_sae(seed: int = 0) -> JumpReLUSAE:
    torch.manual_seed(seed)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=64))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.5)
        sae.W_dec.normal_(0, 0.5)
        sae.b_enc.normal_(0, 0.2)
        sae.threshold.uniform_(0.0, 0.3)
    return sae.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core machine
    # waiting for a descheduled thread makes every small op ~10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hook():
    # Clamp many latents of the last block hard, so steering visibly changes outputs.
    return ClampHook(tiny_sae(), clamp_prime(1, list(range(0, 64, 2)), -20.0))


@pytest.fixture(scope="module")
def gated_hook():
    # At 15.5 the gate opens part-way through some questions and never in others (the
    # "Question" token at position 1 reaches 15.46), so scoring must see them whole.
    return ClampHook(tiny_sae(), gated_clamp(1, list(range(0, 64, 2)), [15.5] * 32, -20.0))


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
        got = evaluate_shared(model, tokenizer, forget, cfg, fewshot=shots, suffix="x y")
    torch.testing.assert_close(
        torch.tensor(got["loglik"].tolist()),
        torch.tensor(ref["loglik"].tolist()),
        atol=1e-4,
        rtol=0,
    )
    assert got["correct"].tolist() == ref["correct"].tolist()


def test_packed_scoring_under_a_gate_that_opens_in_some_branches(tiny_model, gated_hook):
    model, tokenizer = tiny_model
    requests = build_requests(questions(5), "cloze")
    seqs = [encode_pair(tokenizer, r.context, c) for r in requests for c in r.continuations]
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
    seqs = [encode_pair(tokenizer, r.context, c) for r in requests for c in r.continuations]
    ref = continuation_logprobs(model, seqs, tokenizer.pad_token_id)
    for max_tokens in (8, 4096):  # one sequence per row, and everything in one row
        got = score_sequences(model, seqs, max_tokens=max_tokens)
        assert [g for _, g in got] == [g for _, g in ref]
        torch.testing.assert_close(
            torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in ref]), atol=1e-4, rtol=0
        )


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
def test_fewshot_prompt_has_exactly_k_shots(fmt):
    forget, retain = questions(3), questions(20, "geography", offset=1)
    for k in (0, 1, 4, 16):
        shots = draw_shots(retain, k, seed=7)
        assert (shots is None) if k == 0 else len(shots) == k
        for request in build_requests(forget, fmt, fewshot=shots):
            assert request.context.count("Answer:") == k + 1
            if shots is not None:
                for q in shots["question"]:
                    assert request.context.count(q) == 1
    # Seeded and nested: the 4 shots start the 16, and a redraw gives the same ones.
    assert draw_shots(retain, 16, 7)["question"].tolist()[:4] == (
        draw_shots(retain, 4, 7)["question"].tolist()
    )
    assert draw_shots(retain, 4, 7).equals(draw_shots(retain, 4, 7))
    with pytest.raises(ValueError, match="needs 21 retain questions"):
        draw_shots(retain, 21, 0)


def test_deterministic_subset_keeps_order():
    frame = questions(10)
    sub = deterministic_subset(frame, 4, seed=3)
    assert len(sub) == 4 and sub.equals(deterministic_subset(frame, 4, seed=3))
    positions = [frame.index[frame["question"] == q][0] for q in sub["question"]]
    assert positions == sorted(positions)
    assert len(deterministic_subset(frame, None, 0)) == 10


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


def test_allowed_tokens_exclude_special_and_non_ascii(tiny_model):
    _, tokenizer = tiny_model
    allowed = allowed_token_mask(tokenizer, len(tokenizer) + 5, allow_non_ascii=False)
    for special in tokenizer.all_special_ids:
        assert not allowed[special]
    assert not allowed[len(tokenizer) :].any()  # embedding rows beyond the tokenizer
    for i in torch.nonzero(allowed).flatten().tolist():
        text = tokenizer.decode([i])
        assert text.isascii() and text.isprintable()


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


@pytest.mark.parametrize("gated", [False, True])
def test_greedy_continuations_match_generate(tiny_model, hook, gated_hook, gated):
    model, tokenizer = tiny_model
    texts = prompt_texts(questions(3), "cloze")
    with maybe_steer(model, gated_hook if gated else hook):
        ours = greedy_continuations(model, tokenizer, texts, max_new_tokens=6, batch_size=3)
        for text, cont in zip(texts, ours, strict=True):
            ids, _ = encode_pair(tokenizer, text, "")
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=not gated,  # a gated hook must see every step's whole sequence
            )
            assert out[0, len(ids) :].tolist()[: len(cont)] == cont


def test_attack_stage(tmp_path, tiny_model_dir):
    sae_dir = tmp_path / "sae"
    tiny_sae().save_model(sae_dir)
    write_clamp_yaml(clamp_prime(1, list(range(0, 64, 2)), -20.0), tmp_path / "clamp.yaml")
    data = tmp_path / "prepared"
    data.mkdir()
    questions(6).to_parquet(data / "forget_questions.parquet")
    questions(6, "geography", offset=2).to_parquet(data / "retain_questions.parquet")
    params = {
        "seed": 0,
        "model": {"dir": str(tiny_model_dir), "dtype": "float32"},
        "data": {"dir": str(data)},
        "sae": {"dir": str(sae_dir)},
        "clamp": {"dir": str(tmp_path)},
        "evaluate": {"format": "cloze", "batch_size": 8, "bootstrap": 50},
        "attack": {
            "seed": 0,
            "n_eval": 5,
            "fewshot": [0, 2],
            "dir": str(tmp_path / "results"),
            "metrics": str(tmp_path / "attack.json"),
            "gcg": {
                "n_questions": 2,
                "num_steps": 2,
                "search_width": 8,
                "topk": 8,
                "seed": 42,
                "optim_str_init": "x x x",
            },
            "gibberish": {"n_prompts": 3, "max_new_tokens": 4, "fluent_ppl": 1e6, "n_samples": 2},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["attack", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "attack.json").read_text())
    for name in ("baseline", "steered"):
        for k in ("0", "2"):
            assert 0.0 <= metrics["fewshot"][name][k] <= 1.0
        for key in ("acc", "final_loss", "init_loss", "acc_no_suffix"):
            assert math.isfinite(metrics["gcg"][name][key])
        assert metrics["gcg"][name]["final_loss"] <= metrics["gcg"][name]["init_loss"]
    for setting in ("baseline", "steered", "steered_suffix"):
        assert math.isfinite(metrics["gibberish"][setting]["ppl_median"])
        assert metrics["gibberish"][setting]["fluent_share"] == 1.0  # threshold 1e6
    assert metrics["fewshot"]["n"] == 5 and metrics["gcg"]["n_questions"] == 2
    curve = pd.read_csv(tmp_path / "results" / "gcg_loss.csv")
    assert list(curve.columns) == ["step", "model", "loss"]
    assert sorted(curve["model"].unique()) == ["baseline", "steered"]
    assert len(curve) == 2 * 3  # the initial loss and 2 steps per model
    found = json.loads((tmp_path / "results" / "suffixes.json").read_text())
    assert set(found["suffixes"]) == {"baseline", "steered"}
    assert len(found["samples"]) == 2
    assert "continuation" in found["samples"][0]["steered_suffix"]
