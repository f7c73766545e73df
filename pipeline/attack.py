"""attack: few-shot and GCG suffix attacks on the steered model and the unsteered baseline.

Writes `metrics/attack.json` (few-shot accuracy per k, accuracy with the GCG suffix, GCG
losses, fluency of greedy continuations) and, under `attack.dir`, `suffixes.json` (the
found suffixes and sample continuations), `gcg_loss.csv` (per-step losses for the
report's plots), `accuracy.json` (full accuracy summaries with bootstrap intervals) and
`run.json` (timings, kept out of the metrics so they stay reproducible).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
import typer

from pipeline.evaluate import eval_config, read_questions
from pipeline.params import Params, ParamsOption
from sae_unlearn.attacks import (
    GCGConfig,
    allowed_token_mask,
    continuation_perplexities,
    deterministic_subset,
    draw_shots,
    evaluate_shared,
    fluency_summary,
    gcg_prompts,
    greedy_continuations,
    maybe_steer,
    prompt_texts,
    run_gcg,
)
from sae_unlearn.evaluation import accuracy_summary
from sae_unlearn.io import atomic_path, write_json
from sae_unlearn.models import hidden_size, load_model
from sae_unlearn.saes import check_sae_matches_model, load_sae_dir
from sae_unlearn.steering import ClampHook, read_clamp_yaml

MODELS = ("baseline", "steered")
GCG_KEYS = set(GCGConfig.__dataclass_fields__) | {"n_questions"}


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


class _Clock:
    """Wall and process CPU seconds per phase (CPU time shows the work when the machine
    is shared)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = {"wall_s": round(wall - self.wall, 1), "cpu_s": round(cpu - self.cpu, 1)}
        self.wall, self.cpu = wall, cpu
        return out


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
    cfg = eval_config(p, format, batch_size)
    gcg_cfg = gcg_config(p, num_steps, search_width)
    data_dir = Path(p.get("data.dir", "data/prepared"))
    clamp_path = Path(
        p.pick(clamp, "attack.clamp", None) or Path(p.get("clamp.dir", "data/clamp")) / "clamp.yaml"
    )
    if not clamp_path.exists():
        raise typer.BadParameter(f"{clamp_path} does not exist; run `sae-unlearn clamp-config`")
    out_dir = Path(p.pick(out, "attack.dir", "data/results/attack"))
    metrics_path = Path(p.pick(metrics, "attack.metrics", "metrics/attack.json"))
    seed = int(p.get("attack.seed", p.get("seed", 0)))
    shots_k = [int(k) for k in (fewshot or p.get("attack.fewshot", [0, 1, 4, 16]))]
    n_opt = int(p.pick(n_questions, "attack.gcg.n_questions", 4))
    n_eval_q = p.pick(n_eval, "attack.n_eval", None)
    max_tokens = gcg_cfg.max_tokens
    gib = dict(p.get("attack.gibberish", {}) or {})
    n_prompts = int(gib.get("n_prompts", 16))
    max_new = int(gib.get("max_new_tokens", 20))
    fluent_ppl = float(gib.get("fluent_ppl", 50.0))
    n_samples = int(gib.get("n_samples", 5))

    timings: dict[str, dict[str, float]] = {}
    clock = _Clock()
    forget = read_questions(Path(forget_questions or data_dir / "forget_questions.parquet"))
    retain = read_questions(Path(retain_questions or data_dir / "retain_questions.parquet"))
    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    sae_path = Path(p.pick(sae_dir, "sae.dir"))
    sae = load_sae_dir(sae_path)
    check_sae_matches_model(sae, hidden_size(model), sae_path)
    hooks = {"baseline": None, "steered": ClampHook(sae, read_clamp_yaml(clamp_path))}
    eval_set = deterministic_subset(forget, None if n_eval_q is None else int(n_eval_q), seed)
    summaries: dict = {"fewshot": {}, "gcg": {}}
    metrics_out: dict = {
        "format": cfg.format,
        "fewshot": {m: {} for m in MODELS},
        "gcg": {},
        "gibberish": {},
    }
    timings["load"] = clock.lap()

    # Few-shot: the same k retain shots in front of every forget question.
    zero_shot: dict[str, pd.DataFrame] = {}
    for k in shots_k:
        shots = draw_shots(retain, k, seed)
        for name in MODELS:
            with maybe_steer(model, hooks[name]):
                frame = evaluate_shared(
                    model, tokenizer, eval_set, cfg, fewshot=shots, max_tokens=max_tokens
                )
            if k == 0:
                zero_shot[name] = frame
            summary = accuracy_summary(frame, cfg.bootstrap, cfg.seed)
            summaries["fewshot"].setdefault(name, {})[str(k)] = summary
            metrics_out["fewshot"][name][str(k)] = summary["acc"]
            typer.echo(f"few-shot k={k} {name}: acc {summary['acc']:.3f}")
    metrics_out["fewshot"]["n"] = len(eval_set)
    timings["fewshot"] = clock.lap()

    # GCG: one suffix per model, optimised over n_opt forget questions.
    targets = deterministic_subset(forget, n_opt, seed + 1)
    prompts = gcg_prompts(tokenizer, targets, cfg.format)
    allowed = allowed_token_mask(
        tokenizer, model.get_input_embeddings().num_embeddings, gcg_cfg.allow_non_ascii
    )
    target_keys = set(zip(targets["question"], targets["subject"], strict=True))
    in_targets = [
        (q, s) in target_keys
        for q, s in zip(eval_set["question"], eval_set["subject"], strict=True)
    ]
    gcg_results, per_step = {}, {}
    curves = []
    for name in MODELS:
        with maybe_steer(model, hooks[name]):
            t0 = time.perf_counter()
            result = run_gcg(model, tokenizer, prompts, gcg_cfg, allowed=allowed, progress=True)
            # Wall time, kept out of the metrics so they stay reproducible.
            per_step[name] = round((time.perf_counter() - t0) / max(1, len(result.losses)), 2)
            frame = evaluate_shared(
                model, tokenizer, eval_set, cfg, suffix=result.best_string, max_tokens=max_tokens
            )
            if name not in zero_shot:
                zero_shot[name] = evaluate_shared(
                    model, tokenizer, eval_set, cfg, max_tokens=max_tokens
                )
        gcg_results[name] = result
        summary = accuracy_summary(frame, cfg.bootstrap, cfg.seed)
        summaries["gcg"][name] = summary
        held_out = frame[[not t for t in in_targets]]
        steps = len(result.losses)
        metrics_out["gcg"][name] = {
            "acc": summary["acc"],
            "acc_norm": summary["acc_norm"],
            "acc_no_suffix": float(zero_shot[name]["correct"].mean()),
            "acc_held_out": float(held_out["correct"].mean()) if len(held_out) else float("nan"),
            "final_loss": result.best_loss,
            "init_loss": result.init_loss,
            "steps": steps,
        }
        curves.append(pd.DataFrame({"step": [0], "model": [name], "loss": [result.init_loss]}))
        curves.append(
            pd.DataFrame({"step": range(1, steps + 1), "model": name, "loss": result.losses})
        )
        typer.echo(
            f"GCG {name}: loss {result.init_loss:.3f} -> {result.best_loss:.3f}, "
            f"acc {metrics_out['gcg'][name]['acc_no_suffix']:.3f} -> {summary['acc']:.3f} "
            f"with suffix {result.best_string!r}"
        )
    metrics_out["gcg"]["n_questions"] = len(targets)
    metrics_out["gcg"]["n_eval"] = len(eval_set)
    timings["gcg"] = clock.lap()

    # Gibberish: greedy continuations, scored by the unsteered model.
    gib_set = eval_set.head(n_prompts)
    settings = {
        "baseline": ("baseline", ""),
        "baseline_suffix": ("baseline", gcg_results["baseline"].best_string),
        "steered": ("steered", ""),
        "steered_suffix": ("steered", gcg_results["steered"].best_string),
    }
    samples = []
    texts_by_setting = {}
    for setting, (name, suffix) in settings.items():
        texts = prompt_texts(gib_set, cfg.format, suffix)
        with maybe_steer(model, hooks[name]):
            conts = greedy_continuations(model, tokenizer, texts, max_new, cfg.batch_size)
        ppl = continuation_perplexities(model, tokenizer, texts, conts, cfg.batch_size)
        metrics_out["gibberish"][setting] = fluency_summary(ppl, fluent_ppl)
        texts_by_setting[setting] = (texts, conts, ppl)
    for i in range(min(n_samples, len(gib_set))):
        sample = {"question": gib_set.iloc[i]["question"]}
        for setting, (texts, conts, ppl) in texts_by_setting.items():
            sample[setting] = {
                "prompt": texts[i],
                "continuation": tokenizer.decode(conts[i], skip_special_tokens=True),
                "perplexity": ppl[i],
            }
        samples.append(sample)
    metrics_out["gibberish"].update(
        {"fluent_ppl": fluent_ppl, "max_new_tokens": max_new, "n_prompts": len(gib_set)}
    )
    timings["gibberish"] = clock.lap()

    write_json(
        out_dir / "suffixes.json",
        {
            "gcg_config": {k: getattr(gcg_cfg, k) for k in GCGConfig.__dataclass_fields__},
            "target_questions": targets["question"].tolist(),
            "suffixes": {
                name: {
                    "suffix": r.best_string,
                    "token_ids": r.best_ids,
                    "loss": r.best_loss,
                    "init_loss": r.init_loss,
                    "candidates_per_step": r.n_candidates,
                }
                for name, r in gcg_results.items()
            },
            "samples": samples,
        },
    )
    with atomic_path(out_dir / "gcg_loss.csv") as tmp:
        pd.concat(curves, ignore_index=True).to_csv(tmp, index=False)
    write_json(out_dir / "accuracy.json", summaries)
    timings["total"] = {
        key: round(sum(t[key] for t in timings.values()), 1) for key in ("wall_s", "cpu_s")
    }
    write_json(
        out_dir / "run.json",
        {
            "total_seconds": timings["total"]["wall_s"],
            "stage_times": timings,
            "gcg_seconds_per_step": per_step,
            "threads": torch.get_num_threads(),
            "n_eval": len(eval_set),
        },
    )
    write_json(metrics_path, metrics_out)
    g = metrics_out["gibberish"]
    typer.echo(
        f"gibberish: fluent share steered {g['steered']['fluent_share']:.2f}, with suffix "
        f"{g['steered_suffix']['fluent_share']:.2f}; total {timings['total']['wall_s']:.0f}s"
    )
