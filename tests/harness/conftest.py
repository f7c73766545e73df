"""Tiny lm-eval tasks (cloze, and lettered like `wmdp_bio`) over the questions the stages
score, and a stage folder to score them with `sae-unlearn evaluate-baseline` / `evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sae_unlearn.steering import clamp_prime, gated_clamp, write_clamp_yaml
from tests.evaluation.helpers import QUESTIONS, questions, tiny_sae

# lm-eval's own templates: arc_easy's cloze, and wmdp_bio's lettered choices.
TASKS = {
    "cloze": {
        "doc_to_text": "Question: {{question.strip()}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
    },
    "letter": {
        "description": "The following are multiple choice questions (with answers)"
        " about biology.\n\n",
        "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\n"
        "C. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"],
    },
}
CLAMPS = {
    "prime": clamp_prime(1, list(range(0, 64, 2)), -20.0),
    # opens part-way through some questions and never in others (tests.evaluation.helpers)
    "gated": gated_clamp(1, list(range(0, 64, 2)), [15.5] * 32, -20.0),
}


def parity_questions() -> pd.DataFrame:
    """Forget-style questions under the subject whose description the letter task carries."""
    frame = pd.concat([questions(6), QUESTIONS], ignore_index=True)
    return frame.assign(subject="wmdp_bio")


@pytest.fixture(scope="module")
def parity_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """Questions as a stage reads them and as an lm-eval task reads them, an SAE, clamps,
    and the params of the two evaluation stages."""
    root = tmp_path_factory.mktemp("parity")
    data = root / "prepared/questions"
    data.mkdir(parents=True)
    forget = parity_questions()
    forget.to_parquet(data / "forget_questions.parquet")
    questions(4, "geography", offset=2).to_parquet(data / "retain_questions.parquet")
    with (root / "forget.jsonl").open("w") as fh:
        for row in forget.itertuples(index=False):
            fh.write(
                json.dumps(
                    {
                        "question": row.question,
                        "choices": list(row.choices),
                        "answer": int(row.answer),
                    }
                )
                + "\n"
            )
    tasks = root / "tasks"
    tasks.mkdir()
    for fmt, template in TASKS.items():
        task = {
            "task": f"tiny_{fmt}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(root / "forget.jsonl")}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_target": "answer",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
            **template,
        }
        (tasks / f"tiny_{fmt}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    tiny_sae().save_model(root / "sae")
    for name, cfg in CLAMPS.items():
        write_clamp_yaml(cfg, root / "clamp" / name / "clamp.yaml")
    params = {
        "model": {"dir": str(tiny_model_dir)},
        "data": {"dir": str(root / "prepared")},
        "sae": {"dir": str(root / "sae")},
        "clamp": {"dir": str(root / "clamp/prime")},
        "evaluate": {
            "batch_size": 4,
            "bootstrap": 20,
            "dir": str(root / "results"),
            "baseline_metrics": str(root / "baseline.json"),
            "steered_metrics": str(root / "steered.json"),
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root
