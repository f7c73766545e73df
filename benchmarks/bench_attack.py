"""GCG seconds per step: one token gradient plus scoring `search_width` candidates.

Runs on the embedded model (data/model) with the prepared forget questions when they
exist, steered by data/clamp/clamp.yaml + data/sae if present (else a random clamp on a
random SAE, since only the hook's cost matters here); otherwise on a tiny random model,
which the result says. `python -m benchmarks.bench_attack`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from sae_unlearn.attacks import GCGConfig, allowed_token_mask, gcg_prompts, maybe_steer, run_gcg
from sae_unlearn.models import hidden_size, load_model
from sae_unlearn.steering import ClampHook, clamp_prime, read_clamp_yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "data" / "model"
QUESTIONS = ROOT / "data" / "prepared" / "questions" / "forget_questions.parquet"
SAE_DIR = ROOT / "data" / "sae"
CLAMP = ROOT / "data" / "clamp" / "clamp.yaml"
# The embedded defaults of params.yaml (attack.gcg).
CFG = GCGConfig(num_steps=3, search_width=16, topk=64, seed=42)
N_QUESTIONS = 3
LAYER = 9


def _questions(n: int) -> pd.DataFrame:
    if QUESTIONS.exists():
        return pd.read_parquet(QUESTIONS).head(n)
    return pd.DataFrame(
        [
            {
                "question": f"What do viruses infect number {i}?",
                "choices": ["cells", "rocks", "stars", "cars"],
                "answer": 0,
                "subject": "virology",
            }
            for i in range(n)
        ]
    )


def _hook(model, layer: int) -> tuple[ClampHook, str]:
    from sae_lens import TopKSAE, TopKSAEConfig

    from sae_unlearn.saes import load_sae_dir

    if SAE_DIR.exists() and CLAMP.exists():
        return ClampHook(load_sae_dir(SAE_DIR), read_clamp_yaml(CLAMP)), "data/clamp/clamp.yaml"
    torch.manual_seed(0)
    d = hidden_size(model)
    sae = TopKSAE(TopKSAEConfig(d_in=d, d_sae=4096, k=32)).eval()
    return ClampHook(sae, clamp_prime(layer, list(range(5)), -300.0)), "random TopK SAE"


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if MODEL_DIR.exists():
            model, tokenizer = load_model(str(MODEL_DIR), device="cpu")
            which, layer = "embedded model (data/model)", LAYER
        else:
            from tests.tiny import save_tiny_model

            model, tokenizer = load_model(str(save_tiny_model(Path(tmp) / "m")), device="cpu")
            which, layer = "tiny random model (data/model does not exist)", 1
        hook, clamp = _hook(model, layer)
        prompts = gcg_prompts(tokenizer, _questions(N_QUESTIONS), "cloze")
        allowed = allowed_token_mask(
            tokenizer, model.get_input_embeddings().num_embeddings, CFG.allow_non_ascii
        )
        out = {"model": which, "clamp": clamp, "threads": torch.get_num_threads()}
        warm_up = replace(CFG, num_steps=1)
        for name, h in (("baseline", None), ("steered", hook)):
            with maybe_steer(model, h):
                # One untimed step first: the first forwards and backwards of a process pay
                # for allocation and kernel set-up (one cold run read 22.4 s/step, not 3.3).
                run_gcg(model, tokenizer, prompts, warm_up, allowed=allowed)
                start = time.perf_counter()
                result = run_gcg(model, tokenizer, prompts, CFG, allowed=allowed)
                seconds = time.perf_counter() - start
            # Includes the one-off scoring of the initial suffix (one candidate, small).
            out[f"gcg_seconds_per_step_{name}"] = round(seconds / len(result.losses), 2)
        out["gcg_seconds_per_step"] = out["gcg_seconds_per_step_steered"]
        out["settings"] = {
            "search_width": CFG.search_width,
            "topk": CFG.topk,
            "n_questions": N_QUESTIONS,
            "suffix_tokens": len(result.best_ids),
        }
    print(out)
    return out


if __name__ == "__main__":
    run()
