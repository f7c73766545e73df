"""Our evaluation against lm-evaluation-harness on the same questions, side by side in one
run: wall time including the model load, unsteered (lm-eval `hf`, `evaluate_questions`) and
steered (lm-eval `sae_unlearn`, `evaluate_questions` with the clamp hook), cloze format.

The questions are the prepared forget and retain sets (540 on the embedded default), written
as one local lm-eval task in arc_easy's cloze template, float32. lm-eval runs at batch 32
(its default is 1; 32 is what the issue's own measurement used). Ours runs dense at batch 32
and packed in rows of up to 512 tokens (`evaluate_questions`' default, which the stages use);
steered also packed taking the unsteered run's scores where the hook edits nothing (as the
evaluate stage takes the baseline's).
`python -m benchmarks.bench_lm_eval [ROOT]`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from sae_unlearn.evaluation import EvalConfig, checked_clamp, evaluate_questions, load_clamp_hook
from sae_unlearn.evaluation.residuals import RowResiduals
from sae_unlearn.evaluation.run import maybe_steer
from sae_unlearn.models import load_model
from sae_unlearn.steering import read_clamp_yaml

LM_EVAL_BATCH = 32
OUR_BATCH = 32
TARGET = ">= 3 (ours this many times faster)"


def _paths(root: Path) -> dict[str, Path]:
    data = root / "data"
    return {
        "model": data / "model",
        "sae": data / "sae",
        "clamp": data / "clamp" / "clamp.yaml",
        "questions": data / "prepared" / "questions",
    }


def _questions(folder: Path) -> pd.DataFrame:
    roles = [pd.read_parquet(folder / f"{r}_questions.parquet") for r in ("forget", "retain")]
    return pd.concat(roles, ignore_index=True)


def _task(questions: pd.DataFrame, folder: Path) -> str:
    """A local lm-eval task over `questions` in arc_easy's template; returns its name."""
    path = folder / "questions.jsonl"
    with path.open("w") as fh:
        for row in questions.itertuples(index=False):
            doc = {"question": row.question, "choices": list(row.choices)}
            fh.write(json.dumps({**doc, "answer": int(row.answer)}) + "\n")
    task = {
        "task": "bench_cloze",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question.strip()}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
    }
    (folder / "bench_cloze.yaml").write_text(yaml.safe_dump(task))
    return "bench_cloze"


def _lm_eval(model: str, model_args: str, folder: Path) -> tuple[float, list, float]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from sae_unlearn.harness import register

    register()
    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model=model,
        model_args=f"{model_args},device=cpu,dtype=float32",
        tasks=["bench_cloze"],
        task_manager=TaskManager(include_path=str(folder)),
        batch_size=LM_EVAL_BATCH,
        log_samples=True,
    )
    seconds = time.perf_counter() - start
    samples = sorted(out["samples"]["bench_cloze"], key=lambda s: s["doc_id"])
    loglik = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    return seconds, loglik, out["results"]["bench_cloze"]["acc,none"]


def _ours(
    paths: dict,
    questions: pd.DataFrame,
    steered: bool,
    packed: bool,
    baseline: pd.DataFrame | None = None,
    residuals: RowResiduals | None = None,
):
    start = time.perf_counter()
    clamp = checked_clamp(paths["sae"], paths["clamp"]) if steered else None
    model, tokenizer = load_model(str(paths["model"]), device="cpu")
    hook = load_clamp_hook(model, paths["sae"], clamp) if steered else None
    with maybe_steer(model, hook):
        frame = evaluate_questions(
            model,
            tokenizer,
            questions,
            EvalConfig(format="cloze", batch_size=OUR_BATCH),
            packed=packed,
            gates=hook,
            baseline=None if baseline is None else (baseline, "the unsteered run"),
            residuals=residuals if packed else None,
        )
    seconds = time.perf_counter() - start
    return seconds, frame


def run(root: Path | None = None, log=print) -> dict:
    paths = _paths(root or Path(__file__).resolve().parent.parent)
    questions = _questions(paths["questions"])
    out: dict = {"n_questions": len(questions), "target": TARGET}
    out["threads"] = torch.get_num_threads()
    frames: dict[str, pd.DataFrame] = {}
    kept = RowResiduals(read_clamp_yaml(paths["clamp"]).layer - 1)  # filled, then started from
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _task(questions, folder)
        for kind in ("unsteered", "steered"):
            steered = kind == "steered"
            args = f"pretrained={paths['model']}"
            if steered:
                args += f",sae={paths['sae']},clamp={paths['clamp']}"
            log(f"bench lm-eval {kind}: lm-eval ...")
            theirs_s, theirs_ll, theirs_acc = _lm_eval(
                "sae_unlearn" if steered else "hf", args, folder
            )
            row = {"lm_eval_s": round(theirs_s, 1), "lm_eval_acc": theirs_acc}
            # As the stages do, the unsteered packed run keeps its rows' residual stream
            # before the hook's layer, and the steered stage starts its rows there and takes
            # the baseline's scores where the hook edits nothing (`evaluate_questions(
            # baseline=..., residuals=...)`): here the unsteered packed run's.
            variants = [("dense", False, None), ("packed", True, None)]
            if steered:
                variants.append(("packed_reusing", True, frames["unsteered"]))
            for name, packed, baseline in variants:
                log(f"bench lm-eval {kind}: ours ({name}) ...")
                keeps_or_starts = (kind, name) in (
                    ("unsteered", "packed"),
                    ("steered", "packed_reusing"),
                )
                rows = kept if keeps_or_starts else None
                ours_s, frame = _ours(paths, questions, steered, packed, baseline, rows)
                diff = max(
                    float(np.abs(np.asarray(a) - np.asarray(b)).max())
                    for a, b in zip(frame["loglik"], theirs_ll, strict=True)
                )
                row[f"ours_{name}_s"] = round(ours_s, 1)
                row[f"ours_{name}_acc"] = float(frame["correct"].mean())
                row[f"ours_{name}_speedup"] = round(theirs_s / ours_s, 2)
                row[f"ours_{name}_max_loglik_diff"] = float(f"{diff:.2e}")
                if name == "packed":
                    frames[kind] = frame
            out[kind] = row
            log(f"bench lm-eval {kind}: {row}")
    return out


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]) if len(sys.argv) > 1 else None), indent=2))
