"""evaluate-baseline and evaluate: multiple-choice accuracy of every role, unsteered and
steered.

Every role with a question set is scored: forget and retain always, retain_near when its set
was prepared (or given), and each retain role again after a benign forget-topic sentence
(retain_contaminated, retain_near_contaminated). The baseline marks the questions it knows
(SAEBench's view); the steered stage reads those per-question results for its known-correct
accuracy.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.clamp_file import clamp_file
from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.data import ALL_ROLES, ROLES, prepared_path, read_question_file
from sae_unlearn.evaluation import (
    EVAL_ROLES,
    EvalConfig,
    add_alignment,
    add_baseline_known,
    add_steered_known,
    check_baseline_format,
    evaluate_sets,
    load_clamp_hook,
    read_role_results,
    with_contaminated,
)
from sae_unlearn.io import atomic_dir, read_json, write_json, write_parquet
from sae_unlearn.models import load_model


def eval_config(p: Params, fmt: str | None, batch_size: int | None) -> EvalConfig:
    return EvalConfig(
        format=p.pick(fmt, "evaluate.format"),
        batch_size=int(p.pick(batch_size, "evaluate.batch_size")),
        bootstrap=int(p.get("evaluate.bootstrap")),
        seed=int(p.get("seed")),
    )


def question_paths(p: Params, options: dict[str, Path | None]) -> dict[str, Path]:
    """The question file of each role to score: its option, else the prepared set in
    `data.dir`; an optional role only when given or prepared."""
    data_dir = Path(p.get("data.dir"))
    paths = {}
    for role in ALL_ROLES:
        path = Path(options.get(role) or prepared_path(data_dir, role, "questions"))
        if role in ROLES or path.exists():
            paths[role] = path
    return paths


def run_evaluation(
    p: Params,
    cfg: EvalConfig,
    question_files: dict[str, Path],
    out_dir: Path,
    model_dir: Path,
    clamp: Path | None = None,
    sae_dir: Path | None = None,
    baseline_results: Path | None = None,
    mark_known: bool = False,
) -> dict:
    """Load, evaluate every role (steered when `clamp` is given), write per-question results;
    returns the metrics. `mark_known` (the baseline) marks the questions the model knows;
    `baseline_results` (a baseline's results folder) scores the known ones."""
    with record_run_time():
        model, tokenizer = load_model(str(model_dir), p.get("model.dtype"))
        sets = {role: read_question_file(path, False) for role, path in question_files.items()}
        sets = with_contaminated(sets)
        hook = load_clamp_hook(model, sae_dir, clamp) if clamp is not None else None
        results, metrics = evaluate_sets(model, tokenizer, sets, cfg, hook, progress=True)
        if mark_known:
            add_baseline_known(model, tokenizer, sets, results, metrics, cfg, progress=True)
        elif baseline_results is not None:
            known = read_role_results(baseline_results, list(results))
            for role in sorted(set(results) - set(known)):
                typer.echo(f"{baseline_results} has no {role} results: no {role} known_correct")
            add_steered_known(results, known, metrics, cfg)
        with atomic_dir(out_dir) as tmp:  # no role file of an earlier run is left beside
            for role in EVAL_ROLES:
                if role in results:
                    write_parquet(tmp / f"{role}.parquet", results[role])
    return metrics


def summary_line(kind: str, result: dict) -> str:
    parts = [f"{role} {result[role]['acc']:.3f}" for role in EVAL_ROLES if role in result]
    line = f"{kind} " + ", ".join(parts)
    for key in ("alignment", "alignment_near"):
        if key in result:
            line += f", {key} {result[key]:.3f}"
    return line


QuestionOptions = {
    "forget_questions": typer.Option(None, help="forget questions (cais/wmdp schema)"),
    "retain_questions": typer.Option(None, help="retain questions (cais/wmdp schema)"),
    "retain_near_questions": typer.Option(
        None, help="retain_near questions (default: the prepared set, when there is one)"
    ),
}


def baseline_command(
    model_dir: Path | None = typer.Option(None, help="model directory"),
    forget_questions: Path | None = QuestionOptions["forget_questions"],
    retain_questions: Path | None = QuestionOptions["retain_questions"],
    retain_near_questions: Path | None = QuestionOptions["retain_near_questions"],
    out: Path | None = typer.Option(None, help="directory for per-question results"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    format: str | None = typer.Option(None, help="cloze | letter"),
    batch_size: int | None = typer.Option(None),
    params: Path = ParamsOption,
) -> None:
    """Accuracy of the unsteered model, and the questions it knows (never reruns for a clamp
    change)."""
    p = Params.load(params)
    files = dict(forget=forget_questions, retain=retain_questions)
    result = run_evaluation(
        p,
        eval_config(p, format, batch_size),
        question_paths(p, files | {"retain_near": retain_near_questions}),
        Path(out or Path(p.get("evaluate.dir")) / "baseline"),
        Path(p.pick(model_dir, "model.dir")),
        mark_known=True,
    )
    write_json(p.pick(metrics, "evaluate.baseline_metrics"), result)
    typer.echo(summary_line("baseline", result))


def steered_command(
    model_dir: Path | None = typer.Option(None, help="model directory"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory"),
    clamp: str | None = typer.Option(None, help="clamp config YAML, or `none` for unsteered"),
    forget_questions: Path | None = QuestionOptions["forget_questions"],
    retain_questions: Path | None = QuestionOptions["retain_questions"],
    retain_near_questions: Path | None = QuestionOptions["retain_near_questions"],
    baseline: str | None = typer.Option(
        None, help="baseline metrics JSON for alignment, or `none`"
    ),
    baseline_results: str | None = typer.Option(
        None, help="baseline per-question results folder for known_correct, or `none`"
    ),
    out: Path | None = typer.Option(None, help="directory for per-question results"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    format: str | None = typer.Option(None, help="cloze | letter"),
    batch_size: int | None = typer.Option(None),
    params: Path = ParamsOption,
) -> None:
    """Accuracy of the steered model, with the alignment score against the baseline."""
    p = Params.load(params)
    clamp_path = clamp_file(p, clamp, allow_none=True)
    known_dir = baseline_results or str(Path(p.get("evaluate.dir")) / "baseline")
    cfg = eval_config(p, format, batch_size)
    files = dict(forget=forget_questions, retain=retain_questions)
    result = run_evaluation(
        p,
        cfg,
        question_paths(p, files | {"retain_near": retain_near_questions}),
        Path(out or Path(p.get("evaluate.dir")) / "steered"),
        Path(p.pick(model_dir, "model.dir")),
        clamp=clamp_path,
        sae_dir=Path(p.pick(sae_dir, "sae.dir")),
        baseline_results=None if known_dir.lower() == "none" else Path(known_dir),
    )
    baseline_path = p.pick(baseline, "evaluate.baseline_metrics")
    if str(baseline_path).lower() != "none" and Path(baseline_path).exists():
        base = read_json(baseline_path)
        check_baseline_format(base, cfg.format, str(baseline_path))
        add_alignment(result, base, p.get("evaluate.primary_metric"))
    write_json(p.pick(metrics, "evaluate.steered_metrics"), result)
    typer.echo(summary_line("steered", result))
