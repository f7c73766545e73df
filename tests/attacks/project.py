"""A tiny attack project: model, SAE, clamp, prepared questions and corpora, and the
evaluation's per-question results that every family takes its unattacked reference from."""

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.steering import clamp_prime, write_clamp_yaml
from tests.evaluation.helpers import questions, tiny_sae
from tests.tiny import TRAINING_TEXT

RETAIN_TEXT = "The Nile flows north through the desert to the sea, past old farms and towns. " * 3


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def attack_project(tmp_path, tiny_model_dir, evaluated: bool = True):
    """params.yaml of the project; with `evaluated`, evaluate-baseline and evaluate have run."""
    sae_dir = tmp_path / "sae"
    tiny_sae().save_model(sae_dir)
    write_clamp_yaml(clamp_prime(1, list(range(0, 64, 2)), -20.0), tmp_path / "clamp.yaml")
    data = tmp_path / "prepared"
    (data / "questions").mkdir(parents=True)
    questions(10).to_parquet(data / "questions/forget_questions.parquet")
    questions(6, "geography", offset=2).to_parquet(data / "questions/retain_questions.parquet")
    corpora = data / "corpora"
    corpora.mkdir(parents=True)
    pd.DataFrame({"text": ["too short", RETAIN_TEXT], "source": ["a", "b"]}).to_parquet(
        corpora / "retain_corpus.parquet"
    )
    pd.DataFrame({"text": TRAINING_TEXT[:6], "source": ["f"] * 6}).to_parquet(
        corpora / "forget_corpus.parquet"
    )
    params = {
        "seed": 0,
        "model": {"dir": str(tiny_model_dir), "dtype": "float32"},
        "data": {"dir": str(data)},
        "sae": {"dir": str(sae_dir), "layer": 1},  # whitebox's default layer is the one before
        "clamp": {"dir": str(tmp_path)},
        "evaluate": {
            "format": "cloze",
            "batch_size": 8,
            "bootstrap": 50,
            "dir": str(tmp_path / "results"),
            "baseline_metrics": str(tmp_path / "baseline.json"),
            "steered_metrics": str(tmp_path / "steered.json"),
        },
        "attack": {
            "seed": 0,
            "n_eval": None,
            "families_dir": str(tmp_path / "families"),
            "metrics_dir": str(tmp_path),
            "fewshot": {"k": [0, 2]},
            "icl": {"k": [0, 1]},
            "evasion": {"perturbations": ["upper", "filler", "template"], "filler_words": 5},
            "whitebox": {
                "n_train": 2,
                "soft_tokens": 3,
                "soft_steps": 2,
                "bounds": [0.2],
                "residual_steps": 2,
            },
            "relearn": {
                "n_passages": 2,
                "seq_len": 8,
                "batch_size": 2,
                "steps": 2,
                "eval_every": 1,
            },
            "gcg": {
                "n_questions": 2,
                "num_steps": 2,
                "eval_every": 1,
                "search_width": 8,
                "topk": 8,
                "seed": 42,
                "optim_str_init": "x x x",
            },
            "generation": {
                "n_prompts": 3,
                "max_new_tokens": 4,
                "fluent_ppl": 1e6,
                "n_samples": 2,
                "min_distinct_2": 0.0,
                "max_repeat": 4,  # 4 new tokens cannot repeat a longer n-gram
            },
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    if evaluated:
        invoke("evaluate-baseline", "--params", str(path))
        invoke("evaluate", "--params", str(path))
    return path
