"""evaluate-baseline and evaluate: multiple-choice accuracy, unsteered and steered."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.data import (
    QUESTION_SUFFIXES,
    DataError,
    normalise_questions,
    read_records,
    validate_questions,
)
from sae_unlearn.evaluation import (
    EvalConfig,
    accuracy_summary,
    alignment_score,
    evaluate_questions,
    retention_ratio,
)
from sae_unlearn.io import read_json, write_json, write_parquet
from sae_unlearn.models import load_model
from sae_unlearn.saes import check_sae_matches_model, load_sae_dir
from sae_unlearn.steering import ClampHook, read_clamp_yaml, steer


def read_questions(path: Path) -> pd.DataFrame:
    """Any question file in the cais/wmdp schema (+ subject), validated."""
    try:
        frame = read_records(path, QUESTION_SUFFIXES)
        # Hub sets (WMDP, MMLU) legitimately repeat some stems; keep them as lm-eval does.
        validate_questions(frame, str(path), unique=False)
    except DataError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return normalise_questions(frame)


def eval_config(p: Params, fmt: str | None, batch_size: int | None) -> EvalConfig:
    return EvalConfig(
        format=p.pick(fmt, "evaluate.format"),
        batch_size=int(p.pick(batch_size, "evaluate.batch_size")),
        bootstrap=int(p.get("evaluate.bootstrap", 1000)),
        seed=int(p.get("seed", 0)),
    )


def run_evaluation(
    p: Params,
    cfg: EvalConfig,
    model_dir: Path,
    forget_questions: Path,
    retain_questions: Path,
    out_dir: Path,
    clamp: Path | None,
    sae_dir: Path | None,
) -> dict:
    with record_run_time(out_dir):
        return _evaluate_sets(
            p,
            cfg,
            model_dir,
            {"forget": forget_questions, "retain": retain_questions},
            out_dir,
            clamp,
            sae_dir,
        )


def _evaluate_sets(p, cfg, model_dir, question_files, out_dir, clamp, sae_dir) -> dict:
    model, tokenizer = load_model(str(model_dir), p.get("model.dtype", "float32"))
    sets = {role: read_questions(path) for role, path in question_files.items()}
    results: dict[str, pd.DataFrame] = {}
    hook = None
    if clamp is not None:
        clamp_cfg = read_clamp_yaml(clamp)
        sae = load_sae_dir(sae_dir)
        check_sae_matches_model(sae, model.config.get_text_config().hidden_size, sae_dir)
        hook = ClampHook(sae, clamp_cfg)
    for role, questions in sets.items():
        if hook is None:
            results[role] = evaluate_questions(model, tokenizer, questions, cfg, progress=True)
        else:
            with steer(model, hook):
                results[role] = evaluate_questions(model, tokenizer, questions, cfg, progress=True)
        write_parquet(out_dir / f"{role}.parquet", results[role])
    metrics = {"format": cfg.format}
    for role, frame in results.items():
        metrics[role] = accuracy_summary(frame, cfg.bootstrap, cfg.seed)
    return metrics


def add_alignment(metrics: dict, baseline: dict, primary: str) -> dict:
    """The paper's alignment score and retain ratio, against the baseline metrics."""
    f_s, f_b = metrics["forget"][primary], baseline["forget"][primary]
    r_s, r_b = metrics["retain"][primary], baseline["retain"][primary]
    metrics["alignment"] = alignment_score(f_s, f_b, r_s, r_b)
    metrics["retain_ratio"] = r_s / r_b if r_b > 0 else float("nan")
    metrics["forget_ratio"] = f_s / f_b if f_b > 0 else float("nan")
    metrics["r_forget"] = retention_ratio(f_s, f_b)
    metrics["r_retain"] = retention_ratio(r_s, r_b)
    metrics["primary_metric"] = primary
    # SAEBench's view: forget accuracy counts only while retain stays >= 99% of baseline.
    metrics["retain_kept_99"] = bool(r_s >= 0.99 * r_b)
    return metrics


def question_paths(
    p: Params, forget_questions: Path | None, retain_questions: Path | None
) -> tuple[Path, Path]:
    """The question files to score: the options, else the prepared sets in `data.dir`."""
    data_dir = Path(p.get("data.dir", "data/prepared"))
    return (
        Path(forget_questions or data_dir / "forget_questions.parquet"),
        Path(retain_questions or data_dir / "retain_questions.parquet"),
    )


def results_dir(p: Params, out: Path | None, name: str) -> Path:
    return Path(out or Path(p.get("evaluate.dir", "data/results")) / name)


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
        Path(p.pick(model_dir, "model.dir")),
        *question_paths(p, forget_questions, retain_questions),
        results_dir(p, out, "baseline"),
        clamp=None,
        sae_dir=None,
    )
    write_json(p.pick(metrics, "evaluate.baseline_metrics", "metrics/baseline.json"), result)
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
    clamp_path = p.pick(clamp, "evaluate.clamp", str(Path(p.get("clamp.dir")) / "clamp.yaml"))
    clamp_file = None if str(clamp_path).lower() == "none" else Path(clamp_path)
    if clamp_file is not None and not clamp_file.exists():
        raise typer.BadParameter(f"{clamp_file} does not exist; run `sae-unlearn clamp-config`")
    cfg = eval_config(p, format, batch_size)
    result = run_evaluation(
        p,
        cfg,
        Path(p.pick(model_dir, "model.dir")),
        *question_paths(p, forget_questions, retain_questions),
        results_dir(p, out, "steered"),
        clamp=clamp_file,
        sae_dir=Path(p.pick(sae_dir, "sae.dir")),
    )
    baseline_path = p.pick(baseline, "evaluate.baseline_metrics", "metrics/baseline.json")
    if str(baseline_path).lower() != "none" and Path(baseline_path).exists():
        base = read_json(baseline_path)
        if base.get("format") != cfg.format:
            raise typer.BadParameter(
                f"{baseline_path} was scored in {base.get('format')!r} format, not "
                f"{cfg.format!r}; rerun evaluate-baseline"
            )
        add_alignment(result, base, p.get("evaluate.primary_metric", "acc"))
    write_json(p.pick(metrics, "evaluate.steered_metrics", "metrics/steered.json"), result)
    line = f"steered forget {result['forget']['acc']:.3f}, retain {result['retain']['acc']:.3f}"
    if "alignment" in result:
        line += f", alignment {result['alignment']:.3f}"
    typer.echo(line)
