"""evaluate-baseline and evaluate: multiple-choice accuracy of every role, unsteered and
steered.

Every role with a question set is scored: forget and retain always, retain_near when its set
was prepared (or given), and each retain role again after a benign forget-topic sentence
(retain_contaminated, retain_near_contaminated). The baseline marks the questions it knows
(SAEBench's view); the steered stage reads those per-question results for its known-correct
accuracy, and takes their log-likelihoods for the choices its hook edits nothing for.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.clamp_file import clamp_file
from pipeline.eval_config import eval_config
from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.data import ALL_ROLES, ROLES, prepared_path, read_question_file
from sae_unlearn.errors import read_json_input
from sae_unlearn.evaluation import (
    EVAL_ROLES,
    EvalConfig,
    RowResiduals,
    add_alignment,
    add_baseline_known,
    add_steered_known,
    check_baseline_fingerprints,
    check_baseline_format,
    check_baseline_results,
    checked_clamp,
    evaluate_sets,
    kept_block,
    load_clamp_hook,
    read_role_residuals,
    read_role_results,
    residuals_path,
    with_contaminated,
    write_residuals,
)
from sae_unlearn.io import atomic_dir, write_json, write_parquet
from sae_unlearn.models import load_model, num_layers
from sae_unlearn.steering import ClampConfig


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


def read_sets(question_files: dict[str, Path]) -> dict:
    """Every role's questions, and each retain role again after a forget-topic sentence."""
    return with_contaminated(
        {role: read_question_file(path, False) for role, path in question_files.items()}
    )


def run_evaluation(
    p: Params,
    cfg: EvalConfig,
    sets: dict,
    out_dir: Path,
    model_dir: Path,
    clamp: ClampConfig | None = None,
    sae_dir: Path | None = None,
    known: dict | None = None,
    mark_known: bool = False,
    residuals: dict | None = None,
) -> dict:
    """Load, evaluate every role (steered when `clamp` is given), write per-question results;
    returns the metrics. `mark_known` (the baseline) marks the questions the model knows;
    `known` (a baseline's per-question results, checked) scores the known ones. `residuals`
    (role -> RowResiduals): unsteered, kept beside the results; steered, the baseline's."""
    with record_run_time():
        model, tokenizer = load_model(str(model_dir), p.get("model.dtype"))
        hook = load_clamp_hook(model, sae_dir, clamp) if clamp is not None else None
        residuals = fitting_rows(model, residuals)
        # The baseline's results of the questions the hook leaves alone are the steered ones.
        results, metrics = evaluate_sets(
            model, tokenizer, sets, cfg, hook, progress=True, baseline=known, residuals=residuals
        )
        if mark_known:
            add_baseline_known(model, tokenizer, sets, results, metrics, cfg, progress=True)
        elif known is not None:
            add_steered_known(results, known, metrics, cfg)
        with atomic_dir(out_dir) as tmp:  # no role file of an earlier run is left beside
            for role in EVAL_ROLES:
                if role in results:
                    write_parquet(tmp / f"{role}.parquet", results[role])
            for role, kept in (residuals or {}).items() if hook is None else ():
                if kept.tokens:  # none where the model's attention cannot pack rows
                    write_residuals(residuals_path(tmp, role), kept)
    return metrics


def fitting_rows(model, residuals: dict | None) -> dict | None:
    """The rows kept before the hook's layer (`sae.layer`), where the model has that layer.
    Otherwise the questions are scored all the same, from block 0 (the SAE stages refuse
    such a layer; a baseline of another model needs none)."""
    blocks = {kept.block for kept in (residuals or {}).values()}
    if not blocks or kept_block(model, max(blocks) + 1) is not None:
        return residuals
    typer.echo(
        f"sae.layer={max(blocks) + 1} is not a layer of this {num_layers(model)}-layer model: "
        "the rows are scored from block 0 and none are kept"
    )
    return None


def checked_baseline(p: Params, baseline: str | None, cfg: EvalConfig, sets: dict) -> dict | None:
    """The baseline metrics for alignment, checked against the questions before any scoring:
    it must exist (`none` skips alignment), share the format and the question fingerprints."""
    path = p.pick(baseline, "evaluate.baseline_metrics")
    if str(path).lower() == "none":
        return None
    fix = "run `sae-unlearn evaluate-baseline` first, or pass --baseline none (no alignment)"
    base = read_json_input(path, "baseline metrics JSON", fix)
    check_baseline_format(base, cfg.format, str(path))
    check_baseline_fingerprints(base, sets, str(path))
    return base


def checked_known(folder: str, sets: dict) -> dict | None:
    """The baseline's per-question results (known-correct), checked against the questions."""
    if folder.lower() == "none":
        return None
    known = read_role_results(Path(folder), list(sets))
    for role in sorted(set(sets) - set(known)):
        typer.echo(f"{folder} has no {role} results: no {role} known_correct")
    for role, (frame, source) in known.items():
        check_baseline_results(frame, sets[role], source)
    return known


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
    layer: int | None = typer.Option(
        None, help="the clamp hook's layer (sae.layer): the residual stream before it is kept"
    ),
    params: Path = ParamsOption,
) -> None:
    """Accuracy of the unsteered model, and the questions it knows (never reruns for a clamp
    change). Beside each role's results it keeps the residual stream of its packed rows
    before the hook's layer, where the steered evaluation starts."""
    p = Params.load(params)
    files = dict(forget=forget_questions, retain=retain_questions)
    sets = read_sets(question_paths(p, files | {"retain_near": retain_near_questions}))
    hook_layer = int(p.pick(layer, "sae.layer"))
    kept = {role: RowResiduals(hook_layer - 1) for role in sets} if hook_layer > 0 else None
    result = run_evaluation(
        p,
        eval_config(p, format, batch_size),
        sets,
        Path(out or Path(p.get("evaluate.dir")) / "baseline"),
        Path(p.pick(model_dir, "model.dir")),
        mark_known=True,
        residuals=kept,
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
        None,
        help="baseline per-question results folder (known_correct, the scores of the "
        "choices the hook edits nothing for, and the residual stream the rows start from), "
        "or `none` (every choice scored in full)",
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
    sae_path = Path(p.pick(sae_dir, "sae.dir"))
    # before the model loads
    clamp_cfg = None if clamp_path is None else checked_clamp(sae_path, clamp_path)
    cfg = eval_config(p, format, batch_size)
    files = dict(forget=forget_questions, retain=retain_questions)
    sets = read_sets(question_paths(p, files | {"retain_near": retain_near_questions}))
    # Every check of the baseline runs before the model is loaded and anything is scored.
    base = checked_baseline(p, baseline, cfg, sets)
    folder = baseline_results or str(Path(p.get("evaluate.dir")) / "baseline")
    known = checked_known(folder, sets)
    # where the baseline kept its rows' residual stream, the steered rows start from it
    kept = read_role_residuals(Path(folder), sets) if known and clamp_cfg else None
    result = run_evaluation(
        p,
        cfg,
        sets,
        Path(out or Path(p.get("evaluate.dir")) / "steered"),
        Path(p.pick(model_dir, "model.dir")),
        clamp=clamp_cfg,
        sae_dir=sae_path,
        known=known,
        residuals=kept,
    )
    if base is not None:
        add_alignment(result, base, p.get("evaluate.primary_metric"))
    write_json(p.pick(metrics, "evaluate.steered_metrics"), result)
    typer.echo(summary_line("steered", result))
