"""attack: few-shot and GCG suffix attacks on the steered model and the unsteered baseline.

Writes `metrics/attack.json` (few-shot accuracy per k, accuracy with the GCG suffix, GCG
losses, fluency of greedy continuations) and, under `attack.dir`, `suffixes.json` (the
found suffixes and sample continuations), `gcg_loss.csv` (per-step losses for the
report's plots), `accuracy.json` (full accuracy summaries with bootstrap intervals) and
`run.json` (timings, kept out of the metrics so they stay reproducible).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from sae_unlearn.attacks import AttackConfig, GCGConfig, GibberishConfig, PhaseClock, run_attacks
from sae_unlearn.data import DataError
from sae_unlearn.evaluation import EvalConfig, load_clamp_hook, read_question_file
from sae_unlearn.io import atomic_path, write_json
from sae_unlearn.models import load_model

GCG_KEYS = {f.name for f in fields(GCGConfig)} | {"n_questions"}


def gcg_config(p: Params, num_steps: int | None, search_width: int | None) -> GCGConfig:
    raw = {"max_tokens": int(p.get("attack.max_tokens", 512)), **(p.get("attack.gcg", {}) or {})}
    unknown = sorted(set(raw) - GCG_KEYS)
    if unknown:
        raise typer.BadParameter(f"unknown attack.gcg keys {unknown}; known: {sorted(GCG_KEYS)}")
    raw.pop("n_questions", None)
    if num_steps is not None:
        raw["num_steps"] = num_steps
    if search_width is not None:
        raw["search_width"] = search_width
    try:
        return GCGConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def attack_config(
    p: Params,
    fmt: str | None,
    batch_size: int | None,
    fewshot: list[int] | None,
    n_questions: int | None,
    n_eval: int | None,
    gcg: GCGConfig,
) -> AttackConfig:
    gib = dict(p.get("attack.gibberish", {}) or {})
    n_eval_q = p.pick(n_eval, "attack.n_eval", None)
    return AttackConfig(
        evaluation=EvalConfig(
            format=p.pick(fmt, "evaluate.format"),
            batch_size=int(p.pick(batch_size, "evaluate.batch_size")),
            bootstrap=int(p.get("evaluate.bootstrap", 1000)),
            seed=int(p.get("seed", 0)),
        ),
        seed=int(p.get("attack.seed", p.get("seed", 0))),
        fewshot=tuple(int(k) for k in (fewshot or p.get("attack.fewshot", [0, 1, 4, 16]))),
        n_eval=None if n_eval_q is None else int(n_eval_q),
        n_questions=int(p.pick(n_questions, "attack.gcg.n_questions", 4)),
        gcg=gcg,
        gibberish=GibberishConfig(
            n_prompts=int(gib.get("n_prompts", 16)),
            max_new_tokens=int(gib.get("max_new_tokens", 20)),
            fluent_ppl=float(gib.get("fluent_ppl", 50.0)),
            n_samples=int(gib.get("n_samples", 5)),
        ),
    )


def command(
    model_dir: Path | None = typer.Option(None, help="model directory"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory (sae-lens format)"),
    clamp: Path | None = typer.Option(None, help="clamp config YAML"),
    forget_questions: Path | None = typer.Option(None, help="forget questions (cais/wmdp schema)"),
    retain_questions: Path | None = typer.Option(None, help="retain questions (few-shot pool)"),
    out: Path | None = typer.Option(None, help="directory for suffixes and loss curves"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    format: str | None = typer.Option(None, help="cloze | letter"),
    batch_size: int | None = typer.Option(None, help="prompts per generation batch"),
    fewshot: list[int] | None = typer.Option(None, "--fewshot", help="k (repeat)"),
    num_steps: int | None = typer.Option(None, help="override attack.gcg.num_steps"),
    search_width: int | None = typer.Option(None, help="override attack.gcg.search_width"),
    n_questions: int | None = typer.Option(None, help="questions GCG optimises over"),
    n_eval: int | None = typer.Option(None, help="forget questions evaluated (default: all)"),
    params: Path = ParamsOption,
) -> None:
    """Attack the steered model and the baseline: few-shot examples and a GCG suffix."""
    p = Params.load(params)
    gcg = gcg_config(p, num_steps, search_width)
    cfg = attack_config(p, format, batch_size, fewshot, n_questions, n_eval, gcg)
    data_dir = Path(p.get("data.dir", "data/prepared"))
    clamp_path = Path(
        p.pick(clamp, "attack.clamp", None) or Path(p.get("clamp.dir", "data/clamp")) / "clamp.yaml"
    )
    if not clamp_path.exists():
        raise typer.BadParameter(f"{clamp_path} does not exist; run `sae-unlearn clamp-config`")
    out_dir = Path(p.pick(out, "attack.dir", "data/results/attack"))

    clock = PhaseClock()
    try:
        forget = read_question_file(forget_questions or data_dir / "forget_questions.parquet")
        retain = read_question_file(retain_questions or data_dir / "retain_questions.parquet")
    except DataError as exc:
        raise typer.BadParameter(str(exc)) from exc
    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    hook = load_clamp_hook(model, Path(p.pick(sae_dir, "sae.dir")), clamp_path)
    hooks = {"baseline": None, "steered": hook}
    result = run_attacks(model, tokenizer, forget, retain, hooks, cfg, clock, log=typer.echo)

    write_json(out_dir / "suffixes.json", result.suffixes)
    with atomic_path(out_dir / "gcg_loss.csv") as tmp:
        result.loss_curves.to_csv(tmp, index=False)
    write_json(out_dir / "accuracy.json", result.accuracy)
    write_json(out_dir / "run.json", result.run_info)
    write_json(Path(p.pick(metrics, "attack.metrics", "metrics/attack.json")), result.metrics)
    g = result.metrics["gibberish"]
    typer.echo(
        f"gibberish: fluent share steered {g['steered']['fluent_share']:.2f}, with suffix "
        f"{g['steered_suffix']['fluent_share']:.2f}; "
        f"total {result.run_info['total_seconds']:.0f}s"
    )
