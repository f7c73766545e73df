"""The dev-half tuning grid of the embedded default's selection and clamp, in one process.

Reads what `dvc repro` left (the model, the SAE, the latent statistics of `score`, the
prepared questions and the baseline's per-question results), and for each grid point runs
the stages' own selection (`select_latents`) and clamp (`from_selection`) and scores the dev
half of every role, contaminated roles included, steered. Test-half questions are never
scored, so nothing here can be tuned on them. Prints a markdown table of steered / baseline
accuracy per role and writes the rows as JSON.

    .venv/bin/python -m scripts.tune_dev --out logs/tune_dev.json \
        --top-k 120,160 --rate 0.002,0.003 --window 8 --value -1000
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import typer

import pipeline  # noqa: F401  (pins the CPU kernels before torch loads, as every stage does)
from pipeline.evaluate import question_paths, read_sets
from pipeline.params import Params
from sae_unlearn.data.splits import question_splits
from sae_unlearn.evaluation import EVAL_ROLES, EvalConfig, evaluate_sets, load_clamp_hook
from sae_unlearn.models import load_model
from sae_unlearn.selection.config import RULE_FIELDS, SelectConfig
from sae_unlearn.selection.files import LATENTS_FILE, read_scores
from sae_unlearn.selection.ranking import select_latents
from sae_unlearn.steering import Gate, from_selection


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def dev_sets(sets: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each role's dev half (a contaminated question keeps its original's half)."""
    out = {}
    for role, frame in sets.items():
        text = frame.get("original_question", frame["question"])
        keep = [s == "dev" for s in question_splits(text)]
        out[role] = frame[keep].reset_index(drop=True)
    return out


def baseline_dev(results_dir: Path, roles: list[str]) -> dict[str, float]:
    """Dev-half baseline accuracy of each role, from evaluate-baseline's results."""
    out = {}
    for role in roles:
        frame = pd.read_parquet(results_dir / f"{role}.parquet")
        out[role] = float(frame.loc[frame["split"] == "dev", "correct"].mean())
    return out


def main(
    out: Path = typer.Option(Path("logs/tune_dev.json"), help="where the rows go (JSON)"),
    top_k: str = typer.Option("160", help="select.top_k values, comma-separated"),
    rate: str = typer.Option("0.003", help="select.threshold_rate values"),
    window: str = typer.Option("8", help="clamp.gate_window values (0: the latched gate)"),
    value: str = typer.Option("-1000", help="clamp.value values"),
    score: str = typer.Option("", help="select.score (default: params.yaml's)"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    p = Params.load(params)
    sets = dev_sets(read_sets(question_paths(p, {})))
    roles = [r for r in EVAL_ROLES if r in sets]
    base = baseline_dev(Path(p.get("evaluate.dir")) / "baseline", roles)
    typer.echo("baseline dev: " + ", ".join(f"{r} {base[r]:.3f}" for r in roles))
    cfg = EvalConfig(format=p.get("evaluate.format"), batch_size=32, bootstrap=10)
    model, tokenizer = load_model(str(p.get("model.dir")), p.get("model.dtype"))
    latents, windows = read_scores(Path(p.get("score.dir")) / LATENTS_FILE, with_windows=True)
    rows = []
    header = "| score | top_k | rate | gate | value | " + " | ".join(roles) + " |"
    typer.echo(header + "\n" + "|---" * (5 + len(roles)) + "|")
    grid = itertools.product(
        [int(k) for k in _floats(top_k)], _floats(rate), _floats(window), _floats(value)
    )
    for k, r, w, v in grid:
        # params.yaml's selection rule, as the score stage reads it, with the grid's values
        rule = {name: p.get(f"select.{name}") for name in RULE_FIELDS}
        select = SelectConfig(
            **{**rule, "threshold_rate": r}, top_k=k, score=score or p.get("select.score")
        )
        selected = select_latents(latents, select, source="scores", windows=windows)
        gate = Gate("window", window=int(w)) if w > 0 else Gate()
        clamp = from_selection(selected, "gated_clamp", p.get("sae.layer"), v, gate=gate)
        hook = load_clamp_hook(model, Path(p.get("sae.dir")), clamp)
        results, _ = evaluate_sets(model, tokenizer, sets, cfg, hook)
        ratio = {role: float(results[role]["correct"].mean()) / base[role] for role in roles}
        row = {"score": select.score, "top_k": k, "rate": r, "window": int(w), "value": v}
        rows.append({**row, "ratio": ratio})
        gate_name = f"window {int(w)}" if w > 0 else "latched"
        cells = " | ".join(f"{ratio[role]:.3f}" for role in roles)
        typer.echo(f"| {select.score} | {k} | {r} | {gate_name} | {v:g} | {cells} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline_dev": base, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
