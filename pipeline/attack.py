"""attack-baseline and attack: few-shot and GCG suffix attacks, and the gibberish check, on
the unsteered baseline and on the steered model, as two stages.

attack-baseline does not read the clamp, so a clamp sweep point reruns only attack (the
steered half), which joins the baseline's half (`attack.baseline_dir`) and writes
`metrics/attack.json` (few-shot accuracy per k, accuracy with the GCG suffix, GCG losses,
fluency of greedy continuations, for both models) and, under `attack.dir`, `suffixes.json`
(the found suffixes and sample continuations), `gcg_loss.csv` (per-step losses for the
report's plots) and `accuracy.json` (full accuracy summaries with bootstrap intervals).
Timings go to logs/timings.json, out of every DVC output.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.clamp_file import clamp_file
from pipeline.eval_config import eval_config
from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.attacks import AttackConfig, GCGConfig, GibberishConfig, PhaseClock, run_attacks
from sae_unlearn.attacks.halves import half_record, join_halves, read_half, write_half
from sae_unlearn.data import prepared_path, read_question_file
from sae_unlearn.evaluation import checked_clamp, load_clamp_hook
from sae_unlearn.io import atomic_dir, write_json
from sae_unlearn.models import load_model

GCG_OVERRIDES = ("num_steps", "search_width")
# attack.gcg keys of this project's, not nanoGCG's (GCGConfig takes the rest)
OURS = ("n_questions", "eval_every", "per_question")
# The options both halves take (each command lists them, as typer reads signatures).
Options = {
    "model_dir": typer.Option(None, help="model directory"),
    "forget_questions": typer.Option(None, help="forget questions (cais/wmdp schema)"),
    "retain_questions": typer.Option(None, help="retain questions (few-shot pool)"),
    "format": typer.Option(None, help="cloze | letter"),
    "batch_size": typer.Option(None, help="prompts per generation batch"),
    "fewshot": typer.Option(None, "--fewshot", help="k (repeat)"),
    "num_steps": typer.Option(None, help="override attack.gcg.num_steps"),
    "search_width": typer.Option(None, help="override attack.gcg.search_width"),
    "n_questions": typer.Option(None, help="questions GCG optimises over"),
    "n_eval": typer.Option(None, help="override attack.n_eval (forget questions scored)"),
}


def attack_config(p: Params, o: dict) -> AttackConfig:
    """attack.* with the CLI's overrides `o` (the `Options` given)."""
    gcg = {k: v for k, v in p.get("attack.gcg").items() if k not in OURS}
    gcg.update({k: o[k] for k in GCG_OVERRIDES if o.get(k) is not None})
    return AttackConfig(
        evaluation=eval_config(p, o.get("format"), o.get("batch_size")),
        seed=p.get("attack.seed"),
        fewshot=tuple(o.get("fewshot") or p.get("attack.fewshot")),
        n_eval=p.pick(o.get("n_eval"), "attack.n_eval"),
        n_questions=p.pick(o.get("n_questions"), "attack.gcg.n_questions"),
        gcg_eval_every=p.get("attack.gcg.eval_every"),
        gcg_per_question=p.get("attack.gcg.per_question"),
        gcg=GCGConfig(max_tokens=p.get("attack.max_tokens"), **gcg),
        gibberish=GibberishConfig(**p.get("attack.gibberish")),
    )


def attack_questions(p: Params, o: dict):
    """The forget and retain questions."""
    data_dir = Path(p.get("data.dir"))
    return tuple(
        read_question_file(
            o.get(f"{role}_questions") or prepared_path(data_dir, role, "questions"), False
        )
        for role in ("forget", "retain")
    )


def attack_model(p: Params, o: dict):
    return load_model(str(p.pick(o.get("model_dir"), "model.dir")), p.get("model.dtype"))


def baseline_command(
    model_dir: Path | None = Options["model_dir"],
    forget_questions: Path | None = Options["forget_questions"],
    retain_questions: Path | None = Options["retain_questions"],
    format: str | None = Options["format"],
    batch_size: int | None = Options["batch_size"],
    fewshot: list[int] | None = Options["fewshot"],
    num_steps: int | None = Options["num_steps"],
    search_width: int | None = Options["search_width"],
    n_questions: int | None = Options["n_questions"],
    n_eval: int | None = Options["n_eval"],
    out: Path | None = typer.Option(None, help="folder of the baseline's half"),
    params: Path = ParamsOption,
) -> None:
    """Attack the unsteered baseline: the half no clamp change reruns."""
    o, p = dict(locals()), Params.load(params)
    cfg, clock = attack_config(p, o), PhaseClock()
    forget, retain = attack_questions(p, o)
    model, tokenizer = attack_model(p, o)
    with record_run_time() as timings:
        result = run_attacks(
            model, tokenizer, forget, retain, {"baseline": None}, cfg, clock, log=typer.echo
        )
        timings.update(result.run_info)
    write_half(result, half_record(cfg, forget, retain), p.pick(out, "attack.baseline_dir"))
    typer.echo(f"baseline attacks: total {result.run_info['total_seconds']:.0f}s")


def steered_command(
    model_dir: Path | None = Options["model_dir"],
    forget_questions: Path | None = Options["forget_questions"],
    retain_questions: Path | None = Options["retain_questions"],
    format: str | None = Options["format"],
    batch_size: int | None = Options["batch_size"],
    fewshot: list[int] | None = Options["fewshot"],
    num_steps: int | None = Options["num_steps"],
    search_width: int | None = Options["search_width"],
    n_questions: int | None = Options["n_questions"],
    n_eval: int | None = Options["n_eval"],
    sae_dir: Path | None = typer.Option(None, help="SAE directory (sae-lens format)"),
    clamp: Path | None = typer.Option(None, help="clamp config YAML"),
    baseline: Path | None = typer.Option(None, help="folder of the baseline's half"),
    out: Path | None = typer.Option(None, help="directory for suffixes and loss curves"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    params: Path = ParamsOption,
) -> None:
    """Attack the steered model and join the baseline's half: few-shot, GCG, gibberish."""
    o, p = dict(locals()), Params.load(params)
    cfg, clock = attack_config(p, o), PhaseClock()
    sae_path = Path(p.pick(sae_dir, "sae.dir"))
    clamp_cfg = checked_clamp(sae_path, clamp_file(p, p.pick(clamp, "attack.clamp")))
    forget, retain = attack_questions(p, o)
    # the baseline's half is checked before the model loads
    baseline_half = read_half(
        p.pick(baseline, "attack.baseline_dir"), half_record(cfg, forget, retain)
    )
    model, tokenizer = attack_model(p, o)
    hooks = {"steered": load_clamp_hook(model, sae_path, clamp_cfg)}
    with record_run_time() as timings:
        steered = run_attacks(model, tokenizer, forget, retain, hooks, cfg, clock, log=typer.echo)
        timings.update(steered.run_info)
    result = join_halves(baseline_half, steered)
    with atomic_dir(Path(p.pick(out, "attack.dir"))) as tmp:
        write_json(tmp / "suffixes.json", result.suffixes)
        result.loss_curves.to_csv(tmp / "gcg_loss.csv", index=False)
        write_json(tmp / "accuracy.json", result.accuracy)
    write_json(Path(p.pick(metrics, "attack.metrics")), result.metrics)
    g = result.metrics["gibberish"]
    typer.echo(
        f"gibberish: fluent share steered {g['steered']['fluent_share']:.2f}, with suffix "
        f"{g['steered_suffix']['fluent_share']:.2f}; total {steered.run_info['total_seconds']:.0f}s"
    )
