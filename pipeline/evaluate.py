"""evaluate-baseline and evaluate: multiple-choice accuracy, unsteered and steered."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.data import DataError, prepared_path, read_question_file
from sae_unlearn.evaluation import (
    EvalConfig,
    add_alignment,
    check_baseline_format,
    evaluate_sets,
    load_clamp_hook,
)
from sae_unlearn.io import read_json, write_json, write_parquet
from sae_unlearn.models import load_model

ROLES = ("forget", "retain")


def eval_config(p: Params, fmt: str | None, batch_size: int | None) -> EvalConfig:
    return EvalConfig(
        format=p.pick(fmt, "evaluate.format"),
        batch_size=int(p.pick(batch_size, "evaluate.batch_size")),
        bootstrap=int(p.get("evaluate.bootstrap")),
        seed=int(p.get("seed")),
    )


def question_paths(
    p: Params, forget_questions: Path | None, retain_questions: Path | None
) -> tuple[Path, Path]:
    """The question files to score: the options, else the prepared sets in `data.dir`."""
    data_dir = Path(p.get("data.dir"))
    return (
        Path(forget_questions or prepared_path(data_dir, "forget", "questions")),
        Path(retain_questions or prepared_path(data_dir, "retain", "questions")),
    )


def run_evaluation(
    p: Params,
    cfg: EvalConfig,
    question_files: tuple[Path, Path],
    out_dir: Path,
    model_dir: Path,
    clamp: Path | None = None,
    sae_dir: Path | None = None,
) -> dict:
    """Load, evaluate forget and retain (steered when `clamp` is given), write per-question
    results; returns the metrics."""
    with record_run_time():
        model, tokenizer = load_model(str(model_dir), p.get("model.dtype"))
        try:
            sets = {
                role: read_question_file(path, unique=False)
                for role, path in zip(ROLES, question_files, strict=True)
            }
        except DataError as exc:
            raise typer.BadParameter(str(exc)) from exc
        hook = load_clamp_hook(model, sae_dir, clamp) if clamp is not None else None
        results, metrics = evaluate_sets(model, tokenizer, sets, cfg, hook, progress=True)
        for role, frame in results.items():
            write_parquet(out_dir / f"{role}.parquet", frame)
    return metrics


QuestionOptions = {
    "forget_questions": typer.Option(None, help="forget questions (cais/wmdp schema)"),
    "retain_questions": typer.Option(None, help="retain questions (cais/wmdp schema)"),
}


def baseline_command(
    model_dir: Path | None = typer.Option(None, help="model directory"),
    forget_questions: Path | None = QuestionOptions["forget_questions"],
    retain_questions: Path | None = QuestionOptions["retain_questions"],
    out: Path | None = typer.Option(None, help="directory for per-question results"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    format: str | None = typer.Option(None, help="cloze | letter"),
    batch_size: int | None = typer.Option(None),
    params: Path = ParamsOption,
) -> None:
    """Accuracy of the unsteered model (never reruns for a clamp change)."""
    p = Params.load(params)
    result = run_evaluation(
        p,
        eval_config(p, format, batch_size),
        question_paths(p, forget_questions, retain_questions),
        Path(out or Path(p.get("evaluate.dir")) / "baseline"),
        Path(p.pick(model_dir, "model.dir")),
    )
    write_json(p.pick(metrics, "evaluate.baseline_metrics"), result)
    typer.echo(
        f"baseline forget {result['forget']['acc']:.3f}, retain {result['retain']['acc']:.3f}"
    )


def steered_command(
    model_dir: Path | None = typer.Option(None, help="model directory"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory"),
    clamp: str | None = typer.Option(None, help="clamp config YAML, or `none` for unsteered"),
    forget_questions: Path | None = QuestionOptions["forget_questions"],
    retain_questions: Path | None = QuestionOptions["retain_questions"],
    baseline: str | None = typer.Option(
        None, help="baseline metrics JSON for alignment, or `none`"
    ),
    out: Path | None = typer.Option(None, help="directory for per-question results"),
    metrics: Path | None = typer.Option(None, help="metrics JSON"),
    format: str | None = typer.Option(None, help="cloze | letter"),
    batch_size: int | None = typer.Option(None),
    params: Path = ParamsOption,
) -> None:
    """Accuracy of the steered model, with the alignment score against the baseline."""
    p = Params.load(params)
    clamp_path = clamp or str(Path(p.get("clamp.dir")) / "clamp.yaml")
    clamp_file = None if str(clamp_path).lower() == "none" else Path(clamp_path)
    if clamp_file is not None and not clamp_file.exists():
        raise typer.BadParameter(f"{clamp_file} does not exist; run `sae-unlearn clamp-config`")
    cfg = eval_config(p, format, batch_size)
    result = run_evaluation(
        p,
        cfg,
        question_paths(p, forget_questions, retain_questions),
        Path(out or Path(p.get("evaluate.dir")) / "steered"),
        Path(p.pick(model_dir, "model.dir")),
        clamp=clamp_file,
        sae_dir=Path(p.pick(sae_dir, "sae.dir")),
    )
    baseline_path = p.pick(baseline, "evaluate.baseline_metrics")
    if str(baseline_path).lower() != "none" and Path(baseline_path).exists():
        base = read_json(baseline_path)
        try:
            check_baseline_format(base, cfg.format, str(baseline_path))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        add_alignment(result, base, p.get("evaluate.primary_metric"))
    write_json(p.pick(metrics, "evaluate.steered_metrics"), result)
    line = f"steered forget {result['forget']['acc']:.3f}, retain {result['retain']['acc']:.3f}"
    if "alignment" in result:
        line += f", alignment {result['alignment']:.3f}"
    typer.echo(line)
