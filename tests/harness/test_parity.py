"""lm-eval's `hf` and our `sae_unlearn` model, run by lm-eval's `simple_evaluate` on the same
questions as `sae-unlearn evaluate-baseline` / `evaluate`: the same per-choice
log-likelihoods (1e-4), the same chosen answer for every question, equal acc and acc_norm."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.tasks import TaskManager  # noqa: E402

from sae_unlearn.harness import register  # noqa: E402

register()


@functools.cache  # each run once per session: several tests compare with the same one
def harness_run(parity_dir, fmt: str, model: str, model_args: str) -> tuple[list, dict]:
    """lm-eval's per-question log-likelihoods (doc order) and its acc and acc_norm."""
    task = f"tiny_{fmt}"
    out = lm_eval.simple_evaluate(
        model=model,
        model_args=f"{model_args},device=cpu,dtype=float32",
        tasks=[task],
        task_manager=TaskManager(include_path=str(parity_dir / "tasks")),
        batch_size=4,
        log_samples=True,
    )
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    loglik = [[float(resp[0]) for resp in s["filtered_resps"]] for s in samples]
    metrics = out["results"][task]
    return loglik, {"acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"]}


@functools.cache
def stage_run(parity_dir, fmt: str, stage: str, clamp: str | None = None) -> pd.DataFrame:
    """The stage's per-question results of the forget questions."""
    args = [stage, "--params", str(parity_dir / "params.yaml"), "--format", fmt]
    kind = "baseline" if clamp is None else f"steered_{clamp}"
    out = parity_dir / "results" / fmt / kind
    args += ["--out", str(out), "--metrics", str(parity_dir / f"{fmt}_{kind}.json")]
    if clamp is not None:
        args += ["--clamp", str(parity_dir / "clamp" / clamp / "clamp.yaml")]
        args += ["--baseline", "none", "--baseline-results", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out / "forget.parquet")


def assert_same(ours: pd.DataFrame, loglik: list, metrics: dict) -> None:
    assert len(ours) == len(loglik)
    for row, theirs in zip(ours.itertuples(), loglik, strict=True):
        np.testing.assert_allclose(row.loglik, theirs, atol=1e-4, rtol=0)
        assert row.chosen == int(np.argmax(theirs))
    assert ours["correct"].mean() == pytest.approx(metrics["acc"], abs=1e-12)
    assert ours["correct_norm"].mean() == pytest.approx(metrics["acc_norm"], abs=1e-12)


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
@pytest.mark.parametrize("model", ["hf", "sae_unlearn"])
def test_unsteered_parity(parity_dir, tiny_model_dir, fmt, model):
    loglik, metrics = harness_run(parity_dir, fmt, model, f"pretrained={tiny_model_dir}")
    assert_same(stage_run(parity_dir, fmt, "evaluate-baseline"), loglik, metrics)


def test_letter_acc_norm_is_acc(parity_dir, tiny_model_dir):
    # lm-eval's lettered choices are one character each, so acc_norm cannot differ from acc
    _, metrics = harness_run(parity_dir, "letter", "hf", f"pretrained={tiny_model_dir}")
    assert metrics["acc_norm"] == metrics["acc"]
    ours = stage_run(parity_dir, "letter", "evaluate-baseline")
    assert (ours["chosen_norm"] == ours["chosen"]).all()


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
@pytest.mark.parametrize("clamp", ["prime", "gated"])
def test_steered_parity(parity_dir, tiny_model_dir, fmt, clamp):
    loglik, metrics = harness_run(
        parity_dir, fmt, "sae_unlearn", steered_args(parity_dir, tiny_model_dir, clamp)
    )
    assert_same(stage_run(parity_dir, fmt, "evaluate", clamp), loglik, metrics)
    # What lm-eval measured is the clamp's: unlike the baseline, and (gated) unlike the
    # clamp without its gate, which edits every position.
    other = (
        harness_run(parity_dir, fmt, "hf", f"pretrained={tiny_model_dir}")
        if clamp == "prime"
        else harness_run(
            parity_dir, fmt, "sae_unlearn", steered_args(parity_dir, tiny_model_dir, "prime")
        )
    )
    assert np.abs(np.asarray(loglik) - np.asarray(other[0])).max() > 1e-2


def steered_args(parity_dir, model_dir, clamp: str) -> str:
    sae, clamp_file = parity_dir / "sae", parity_dir / "clamp" / clamp / "clamp.yaml"
    return f"pretrained={model_dir},sae={sae},clamp={clamp_file}"


def test_generate_until_carries_the_gate(parity_dir, tiny_model_dir):
    """`generate_until` through lm-eval matches our cached greedy decoder with the same
    gated hook (the gate followed across decode steps)."""
    from sae_unlearn.evaluation import checked_clamp, load_clamp_hook
    from sae_unlearn.generation import greedy_generate
    from sae_unlearn.models import load_model

    cls = register()
    lm = cls(
        pretrained=str(tiny_model_dir),
        sae=str(parity_dir / "sae"),
        clamp=str(parity_dir / "clamp" / "gated" / "clamp.yaml"),
        device="cpu",
        dtype="float32",
        batch_size=3,
    )
    prompts = ["Question: Which insect spreads malaria?\nAnswer:", "Viruses replicate", "Paris"]
    from lm_eval.api.instance import Instance

    requests = [
        Instance("generate_until", {}, (p, {"until": ["<eos>"], "max_gen_toks": 8}), i)
        for i, p in enumerate(prompts)
    ]
    texts = lm.generate_until(requests)
    model, tokenizer = load_model(str(tiny_model_dir), device="cpu")
    clamp_cfg = checked_clamp(parity_dir / "sae", parity_dir / "clamp" / "gated" / "clamp.yaml")
    hook = load_clamp_hook(model, parity_dir / "sae", clamp_cfg)
    ours = greedy_generate(model, tokenizer, prompts, hook, max_new_tokens=8, batch_size=3)
    assert texts == [tokenizer.decode(c.new_ids, skip_special_tokens=True) for c in ours]
    plain = greedy_generate(model, tokenizer, prompts, None, max_new_tokens=8, batch_size=3)
    assert [c.new_ids for c in ours] != [c.new_ids for c in plain]
