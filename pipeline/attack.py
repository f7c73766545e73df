"""attack: few-shot and GCG suffix attacks on the steered model and the unsteered baseline.

Writes `metrics/attack.json` (few-shot accuracy per k, accuracy with the GCG suffix, GCG
losses, fluency of greedy continuations) and, under `attack.dir`, `suffixes.json` (the
found suffixes and sample continuations), `gcg_loss.csv` (per-step losses for the
report's plots) and `accuracy.json` (full accuracy summaries with bootstrap intervals).
Timings go to logs/timings.json, out of every DVC output.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.clamp_file import clamp_file
from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.attacks import AttackConfig, GCGConfig, GibberishConfig, PhaseClock, run_attacks
from sae_unlearn.data import prepared_path, read_question_file
from sae_unlearn.evaluation import EvalConfig, checked_clamp, load_clamp_hook
from sae_unlearn.io import atomic_dir, write_json
from sae_unlearn.models import load_model

GCG_OVERRIDES = ("num_steps", "search_width")


def attack_config(
    p: Params, overrides: dict, fewshot: list[int] | None, n_questions: int | None
) -> AttackConfig:
    """attack.* with the CLI's overrides (`overrides`: GCG and evaluation keys)."""
    gcg = {k: v for k, v in p.get("attack.gcg").items() if k != "n_questions"}
    gcg.update({k: v for k, v in overrides.items() if k in GCG_OVERRIDES and v is not None})
    return AttackConfig(
        evaluation=EvalConfig(
            format=p.pick(overrides.get("format"), "evaluate.format"),
            batch_size=p.pick(overrides.get("batch_size"), "evaluate.batch_size"),
            bootstrap=p.get("evaluate.bootstrap"),
            seed=p.get("seed"),
        ),
        seed=p.get("attack.seed"),
        fewshot=tuple(fewshot or p.get("attack.fewshot")),
        n_eval=p.pick(overrides.get("n_eval"), "attack.n_eval"),
        n_questions=p.pick(n_questions, "attack.gcg.n_questions"),
        gcg=GCGConfig(max_tokens=p.get("attack.max_tokens"), **gcg),
        gibberish=GibberishConfig(**p.get("attack.gibberish")),
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
    overrides = dict(num_steps=num_steps, search_width=search_width, format=format)
    overrides.update(batch_size=batch_size, n_eval=n_eval)
    cfg = attack_config(p, overrides, fewshot, n_questions)
    data_dir = Path(p.get("data.dir"))
    clamp_path = clamp_file(p, p.pick(clamp, "attack.clamp"))
    sae_path = Path(p.pick(sae_dir, "sae.dir"))
    clamp_cfg = checked_clamp(sae_path, clamp_path)  # before the model loads
    out_dir = Path(p.pick(out, "attack.dir"))

    clock = PhaseClock()
    forget = read_question_file(
        forget_questions or prepared_path(data_dir, "forget", "questions"), False
    )
    retain = read_question_file(
        retain_questions or prepared_path(data_dir, "retain", "questions"), False
    )
    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    hook = load_clamp_hook(model, sae_path, clamp_cfg)
    hooks = {"baseline": None, "steered": hook}
    with record_run_time() as timings:
        result = run_attacks(model, tokenizer, forget, retain, hooks, cfg, clock, log=typer.echo)
        timings.update(result.run_info)

    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "suffixes.json", result.suffixes)
        result.loss_curves.to_csv(tmp / "gcg_loss.csv", index=False)
        write_json(tmp / "accuracy.json", result.accuracy)
    write_json(Path(p.pick(metrics, "attack.metrics")), result.metrics)
    g = result.metrics["gibberish"]
    typer.echo(
        f"gibberish: fluent share steered {g['steered']['fluent_share']:.2f}, with suffix "
        f"{g['steered_suffix']['fluent_share']:.2f}; "
        f"total {result.run_info['total_seconds']:.0f}s"
    )
