"""attack-family FAMILY: one attack family (`choices.ATTACK_FAMILIES`) against one model.

DVC runs each family as a stage pair: `--model baseline` (attack-<family>-baseline) does not
read the clamp, so a clamp sweep point does not rerun it; `--model steered`
(attack-<family>) attacks the steered model, joins the baseline's half, and writes
`<families_dir>/<family>/` and `<metrics_dir>/attack_<family>.json` (per model and setting:
accuracy with its 95% interval, and the share of prompts the steered model's gate opened on).
Each family's unattacked reference is the evaluation's per-question result for the same
questions (`evaluate.dir`), when the attack runs on the evaluated questions and clamp.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.attack_plans import family_dirs, make_plan, prepared_questions
from pipeline.clamp_file import clamp_file
from pipeline.eval_config import eval_config
from pipeline.params import Params, ParamsOption, family_metrics_path
from pipeline.timing import record_run_time
from sae_unlearn.attacks.family import (
    FAMILIES,
    SAME_PROMPT_FAMILIES,
    KeptRows,
    join_family_halves,
    read_family_half,
    write_family_half,
)
from sae_unlearn.attacks.reference import check_evaluation, reference_results
from sae_unlearn.attacks.whitebox import recovery
from sae_unlearn.data import read_question_file
from sae_unlearn.errors import UserError, read_json_input
from sae_unlearn.evaluation import checked_clamp, kept_block, load_clamp_hook
from sae_unlearn.io import write_json
from sae_unlearn.models import load_model

MODEL_CHOICES = ("baseline", "steered")


def references(p: Params, plan, model: str, forget, evaluated: bool) -> dict | None:
    """model -> role -> the evaluation's results for the plan's questions; None (each family
    scores its reference itself) unless the attack runs on the evaluated questions and clamp.
    The evaluation must be of the attack's format and question files."""
    if not plan.reference or not evaluated:
        return None
    source = p.get(f"evaluate.{model}_metrics")
    fix = f"run `sae-unlearn evaluate{'-baseline' if model == 'baseline' else ''}` first"
    metrics = read_json_input(source, "evaluation metrics", fix)
    # the forget file is already read; on the evaluated path it is the prepared one
    files = {r: forget if r == "forget" else prepared_questions(p, r) for r in plan.reference}
    check_evaluation(metrics, source, eval_config(p).format, files)
    folder = Path(p.get("evaluate.dir")) / model
    return {
        model: {role: reference_results(folder, role, qs) for role, qs in plan.reference.items()}
    }


def kept_rows(p: Params, family: str, baseline_half, model) -> KeptRows | None:
    """Where a same-prompt family's baseline half keeps its rows before the hook's layer
    (`baseline_half` None; none where the model lacks `sae.layer`), or where the steered half
    starts them (the baseline half's)."""
    if family not in SAME_PROMPT_FAMILIES:
        return None
    if baseline_half is not None:
        return KeptRows(by_setting=baseline_half.residuals)
    block = kept_block(model, int(p.get("sae.layer")))
    return KeptRows(block=block) if block is not None else None


def command(
    family: str = typer.Argument(..., help=f"the attack family: {' | '.join(FAMILIES)}"),
    model_choice: str = typer.Option(
        "steered", "--model", help="baseline (no clamp) | steered (joins the baseline's half)"
    ),
    model_dir: Path | None = typer.Option(None, help="model directory"),
    forget_questions: Path | None = typer.Option(None, help="forget questions"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory (steered)"),
    clamp: Path | None = typer.Option(None, help="clamp config YAML (steered)"),
    params: Path = ParamsOption,
) -> None:
    """One attack family against the unsteered baseline or the steered model."""
    if family not in FAMILIES:
        raise UserError(f"unknown attack family {family!r}. Fix: one of {', '.join(FAMILIES)}")
    if model_choice not in MODEL_CHOICES:
        raise UserError(f"--model {model_choice!r}: choose baseline or steered")
    p = Params.load(params)
    if forget_questions is not None:
        forget = read_question_file(forget_questions, False)
    else:
        forget = prepared_questions(p, "forget")
    plan = make_plan(family, p, forget, model_choice)
    overrides = [model_dir, forget_questions]
    if model_choice == "steered":  # the baseline reads no clamp
        overrides += [sae_dir, clamp, p.get("attack.clamp")]
    evaluated = all(o is None for o in overrides)
    reference = references(p, plan, model_choice, forget, evaluated)  # read before the model loads
    baseline_dir, joined_dir = family_dirs(p, family)
    hook_of = baseline_half = None
    if model_choice == "steered":
        sae_path = Path(p.pick(sae_dir, "sae.dir"))
        clamp_cfg = checked_clamp(sae_path, clamp_file(p, p.pick(clamp, "attack.clamp")))
        baseline_half = read_family_half(baseline_dir, plan.record, family)

        def hook_of(model):
            return load_clamp_hook(model, sae_path, clamp_cfg)

    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    hooks = {model_choice: hook_of(model) if hook_of else None}
    stage = f"attack-{family}" + ("-baseline" if model_choice == "baseline" else "")
    extra = {"reference": reference} if reference else {}
    rows = kept_rows(p, family, baseline_half, model)
    if rows is not None:
        extra["rows"] = rows
    with record_run_time(stage=stage) as timings:
        outputs = plan.attack(model, tokenizer, hooks=hooks, cfg=plan.cfg, **plan.inputs, **extra)
        timings.update(outputs.run_info)
    if plan.reference:
        outputs.metrics["reference"] = "evaluation" if reference else "scored"
    if model_choice == "baseline":
        outputs.residuals = rows.kept() if rows is not None else {}
        write_family_half(outputs, plan.record, baseline_dir)
        typer.echo(f"{family} baseline half -> {baseline_dir}")
        return
    result = join_family_halves(baseline_half, outputs)
    if family == "whitebox":
        result.metrics["recovery"] = recovery(result.metrics)
    write_family_half(result, plan.record, joined_dir)
    write_json(family_metrics_path(p, family), result.metrics)
    typer.echo(f"{family} -> {joined_dir}, {family_metrics_path(p, family)}")
