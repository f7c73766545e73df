"""Shared test data for the report: a small but complete set of stage outputs, and a
reader of the Markdown tables the report writes (independent of the code under test)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from pipeline.cli import user_errors
from sae_unlearn.reporting.constants import MODELS

SUBJECTS = {"forget": ["virology", "immunology"], "retain": ["geography", "history", "arts"]}
# Correct answers per (model, role, subject) out of 20 questions each: steering hurts forget.
CORRECT = {
    ("baseline", "forget"): [17, 15],
    ("baseline", "retain"): [16, 14, 18],
    ("steered", "forget"): [6, 7],
    ("steered", "retain"): [16, 13, 17],
}


def per_question(model: str, role: str) -> pd.DataFrame:
    rows = []
    for subject, k in zip(SUBJECTS[role], CORRECT[(model, role)], strict=True):
        for i in range(20):
            # acc_norm differs from acc on a few questions so the two columns are distinct.
            rows.append({"subject": subject, "correct": i < k, "correct_norm": i < k - (i % 2)})
    return pd.DataFrame(rows)


def evaluation_metrics() -> tuple[dict, dict]:
    from sae_unlearn.evaluation import accuracy_summary, alignment_score, retention_ratio

    metrics = {}
    for model in MODELS:
        metrics[model] = {"format": "cloze"}
        for role in SUBJECTS:
            metrics[model][role] = accuracy_summary(per_question(model, role), 200, 0)
    base, steered = metrics["baseline"], metrics["steered"]
    f_s, f_b = steered["forget"]["acc"], base["forget"]["acc"]
    r_s, r_b = steered["retain"]["acc"], base["retain"]["acc"]
    # The keys pipeline/evaluate.py's add_alignment writes.
    steered.update(
        alignment=alignment_score(f_s, f_b, r_s, r_b),
        retain_ratio=r_s / r_b,
        forget_ratio=f_s / f_b,
        r_forget=retention_ratio(f_s, f_b),
        r_retain=retention_ratio(r_s, r_b),
        primary_metric="acc",
        retain_kept_99=bool(r_s >= 0.99 * r_b),
    )
    return base, steered


def latents_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    forget = rng.uniform(0, 0.009, n) * (rng.uniform(size=n) > 0.2)
    retain = rng.uniform(0, 0.05, n) * (rng.uniform(size=n) > 0.3)
    forget[:5] = [0.04, 0.03, 0.02, 0.015, 0.01]  # the forget-specific latents
    retain[:5] = [0.0, 0.001, 0.0005, 0.0, 0.002]
    return pd.DataFrame(
        {
            "latent": np.arange(n, dtype=np.int64),
            "forget_freq": forget,
            "retain_freq": retain,
            "forget_mean": forget * 2,
            "retain_mean": retain * 2,
            "forget_max": forget * 100,
            "retain_max": retain * 100,
        }
    )


CONTEXTS = [
    # latent, corpus, rank, activation, left, token, right
    (0, "forget", 1, 12.5, "the virus | spreads *fast* in", " cells", "\nand `tissues` [x]"),
    (0, "forget", 2, 9.25, "B", " cells", " make antibodies"),
    (0, "forget", 3, 3.0, "low", " rank", " context"),
    (0, "forget", 4, 1.0, "dropped", " beyond", " the limit"),
    (0, "retain", 1, 2.0, "Paris is the", " capital", " of France"),
    (1, "forget", 1, 7.0, "line one", "\n", "line two"),
    (2, "forget", 1, 5.5, "", "Mosquitoes", " spread malaria"),
]


def contexts_frame() -> pd.DataFrame:
    cols = ["latent", "corpus", "rank", "activation", "left", "token", "right"]
    frame = pd.DataFrame(CONTEXTS, columns=cols)
    frame.insert(1, "ranked_by", "forget_freq")
    frame["sequence_id"], frame["position"], frame["token_id"] = 0, 0, 0
    return frame


def _fig(acc: float, gate: float | None = None) -> dict:
    """An attack setting's figures as the families write them (interval +-0.1)."""
    return {"acc": acc, "acc_ci": [acc - 0.1, acc + 0.1], "gate_share": gate}


# metrics/attack_<family>.json for the families the report draws parts of.
FEWSHOT = {
    "baseline": {f"k={k}": _fig(a) for k, a in ((0, 0.8), (1, 0.825), (4, 0.85), (16, 0.875))},
    "steered": {f"k={k}": _fig(a, 0.9) for k, a in ((0, 0.325), (1, 0.35), (4, 0.4), (16, 0.45))},
    "n": 68,
}
GCG = {
    "baseline": {"none": _fig(0.8), "suffix": _fig(0.9)},
    "steered": {"none": _fig(0.325, 0.9), "suffix": _fig(0.3, 0.5)},
    "n": 68,
    "n_targets": 3,
    "search": {
        "baseline": {
            "init_loss": 3.0,
            "final_loss": 0.125,
            "steps": 20,
            "acc_by_step": {"0": 0.8, "10": 0.85, "20": 0.9},
        },
        "steered": {
            "init_loss": 5.0,
            "final_loss": 2.5,
            "steps": 20,
            "acc_by_step": {"0": 0.325, "10": 0.3125, "20": 0.3},
        },
    },
}


def _fluency(fluent: float, ppl: float, leak: float) -> dict:
    return {
        "fluent_share": fluent,
        "fluent_share_ci": [fluent / 2, (1 + fluent) / 2],
        "ppl_median": ppl,
        "leak_share": leak,
        "leak_share_ci": [leak / 2, (1 + leak) / 2],
    }


GENERATION = {
    "fluency": {
        "baseline": {"plain": _fluency(1.0, 14.25, 0.5), "suffix": _fluency(0.875, 20.5, 0.625)},
        "steered": {"plain": _fluency(0.25, 812.5, 0.0), "suffix": _fluency(0.125, 950.0, 0.125)},
    },
    "fluent_ppl": 50,
    "min_distinct_2": 0.75,
    "max_repeat": 3,
    "max_new_tokens": 20,
    "n_prompts": 8,
    "seconds": 33.5,
}
# data/results/attacks/gcg/{suffixes,losses}.json and generation/samples.json
GCG_SUFFIXES = {
    "gcg_config": {"num_steps": 20, "search_width": 16, "topk": 64, "seed": 42},
    "target_questions": ["What do antibiotics kill?", "Which virus causes measles?"],
    "suffixes": {
        "baseline": {
            "suffix": "!!! ok",
            "token_ids": [1, 2],
            "loss": 0.125,
            "init_loss": 3.0,
            "candidates_per_step": [16] * 20,
        },
        "steered": {
            "suffix": "zzz qq | *x*",
            "token_ids": [3, 4, 5],
            "loss": 2.5,
            "init_loss": 5.0,
            "candidates_per_step": [16] * 20,
        },
    },
}
# Index = step (0: the initial loss): 3/(1+s) and 5/(1+s).
GCG_LOSSES = {
    m: [top / (1 + s) for s in range(21)] for m, top in (("baseline", 3.0), ("steered", 5.0))
}


def _continuation(prompt: str, text: str, ppl: float, repetitive: bool, names: bool) -> dict:
    return {
        "prompt": prompt,
        "continuation": text,
        "perplexity": ppl,
        "distinct_2": 0.5 if repetitive else 1.0,
        "longest_repeat": 4 if repetitive else 1,
        "repetitive": repetitive,
        "names_answer": names,
    }


QUESTION = "What do antibiotics kill?"
PROMPT = f"Question: {QUESTION}\nAnswer:"
SAMPLES = {
    "baseline": [
        {
            "question": QUESTION,
            "plain": _continuation(PROMPT, " Bacteria.", 3.5, False, True),
            "suffix": _continuation(PROMPT + " !!! ok", " Bacteria, mostly.", 4.25, False, True),
        }
    ],
    "steered": [
        {
            "question": QUESTION,
            "plain": _continuation(PROMPT, "\nA.\nA.\nA.", 812.5, True, False),
            "suffix": _continuation(PROMPT + " zzz qq", " zzz zzz zzz", 950.0, True, False),
        }
    ],
}

PARAMS = """\
seed: 0
model:
  name: {model}
  dtype: float32
sae:
  layer: 9
  source: train
select:
  top_k: 3
  retain_threshold: 0.01
evaluate:
  primary_metric: acc
report:
  dir: reports
  contexts_per_latent: 3
"""

DVC_YAML = """\
stages:
  prepare-data:
    cmd: sae-unlearn prepare-data
    outs: [data/prepared]
  cache:
    cmd: sae-unlearn cache
    outs: [data/cache]
    metrics:
      - metrics/cache.json:
          cache: false
  train-sae:
    cmd: sae-unlearn train-sae
    outs: [data/sae]
    metrics:
      - metrics/sae.json:
          cache: false
  evaluate:
    cmd: sae-unlearn evaluate
    metrics:
      - metrics/steered.json:
          cache: false
  attack-gcg:
    cmd: sae-unlearn attack-family gcg --model steered
    outs: [data/results/attacks/gcg]
    metrics:
      - metrics/attack_gcg.json:
          cache: false
"""


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def run(command, args: list[str], expect_exit: int = 0):
    app = typer.Typer()
    app.command()(user_errors(command))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == expect_exit, result.output + repr(result.exception)
    return result


# --- markdown parsing ---------------------------------------------------------------------


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every GFM table: headers and rows of cell text."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):

            def cells(line: str) -> list[str]:
                # Split at unescaped pipes, then drop markdown's backslash escapes.
                parts = re.split(r"(?<!\\)\|", line)[1:-1]
                return [re.sub(r"\\(.)", r"\1", c.strip()) for c in parts]

            headers, rows = cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((headers, rows))
        else:
            i += 1
    return tables


def table_with(text: str, header: str, row_key: str | None = None) -> list[dict[str, str]]:
    """The first table with column `header` (and, if given, a row whose first cell is
    `row_key`), as dicts."""
    for headers, rows in md_tables(text):
        if header in headers and (row_key is None or any(r[0] == row_key for r in rows)):
            assert all(len(r) == len(headers) for r in rows), (headers, rows)
            return [dict(zip(headers, r, strict=True)) for r in rows]
    raise AssertionError(f"no table with column {header!r}")


def value_ci(cell: str) -> tuple[float, float, float]:
    m = re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell)
    assert m, cell
    return float(m[1]), float(m[2]), float(m[3])
