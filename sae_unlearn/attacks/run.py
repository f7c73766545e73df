"""The attack stages' orchestration: few-shot, GCG and gibberish phases against the
unsteered baseline and the steered model (or one of them: each model's attacks are
independent, so the baseline's run once whatever the clamp), with metrics, summaries and
artefacts.

Timings go to `run_info`, kept out of the metrics so they stay reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.fewshot import fewshot_attack
from sae_unlearn.attacks.gcg import GCGConfig, GCGResult, run_gcg
from sae_unlearn.attacks.gcg_tokens import allowed_token_mask, gcg_prompts
from sae_unlearn.attacks.generation import (
    continuation_perplexities,
    distinct_n,
    fluency_summary,
    is_repetitive,
    longest_repeat,
    names_answer,
)
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.metrics import accuracy_summary, bootstrap_ci
from sae_unlearn.evaluation.prompts import prompt_texts
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.generation.greedy import greedy_generate
from sae_unlearn.steering import ClampHook

MODELS = ("baseline", "steered")


@dataclass(frozen=True)
class GibberishConfig:
    n_prompts: int = 16  # forget questions whose prompts are continued
    max_new_tokens: int = 20
    fluent_ppl: float = 50.0  # perplexity under which a continuation counts as fluent
    n_samples: int = 5  # continuations kept as examples
    # ...and not repetitive: distinct-2 at least this, no repeated n-gram longer than max_repeat
    min_distinct_2: float = 0.75
    max_repeat: int = 3


@dataclass(frozen=True)
class AttackConfig:
    evaluation: EvalConfig = field(default_factory=EvalConfig)  # format, batching, bootstrap
    seed: int = 0
    fewshot: tuple[int, ...] = (0, 1, 4, 16)  # k retain shots per few-shot run
    n_eval: int | None = None  # forget questions scored (None: all)
    n_questions: int = 3  # forget questions GCG optimises over
    gcg: GCGConfig = field(default_factory=GCGConfig)
    gcg_eval_every: int = 5  # the budget curve: accuracy with the suffix every this many steps
    gcg_per_question: bool = False  # also one suffix per target question (n_questions runs)
    gibberish: GibberishConfig = field(default_factory=GibberishConfig)


@dataclass
class AttackOutputs:
    metrics: dict  # metrics/attack.json
    accuracy: dict  # full accuracy summaries with bootstrap intervals
    suffixes: dict  # found suffixes and sample continuations
    loss_curves: pd.DataFrame  # step, model, loss
    run_info: dict  # timings


class PhaseClock:
    """Wall and process CPU seconds per phase (CPU time shows the work when the machine
    is shared)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = {"wall_s": round(wall - self.wall, 1), "cpu_s": round(cpu - self.cpu, 1)}
        self.wall, self.cpu = wall, cpu
        return out


class _AttackRun:
    """One run's shared state: the models, the scored questions, and the metrics and
    accuracy summaries each phase adds to."""

    def __init__(self, model, tokenizer, hooks, cfg: AttackConfig, eval_set, log) -> None:
        self.model, self.tokenizer, self.hooks, self.log = model, tokenizer, hooks, log
        self.cfg, self.eval_cfg = cfg, cfg.evaluation
        self.eval_set = eval_set
        self.models = [m for m in MODELS if m in hooks]
        self.metrics: dict = {
            "format": self.eval_cfg.format,
            "fewshot": {m: {} for m in self.models},
        }
        self.metrics.update(gcg={}, gibberish={})
        self.accuracy: dict = {"fewshot": {}, "gcg": {}}
        self.zero_shot: dict[str, pd.DataFrame] = {}  # each model's results without attack

    def evaluate(self, questions: pd.DataFrame | None = None, **kwargs) -> pd.DataFrame:
        return evaluate_questions(
            self.model,
            self.tokenizer,
            self.eval_set if questions is None else questions,
            self.eval_cfg,
            packed=True,
            max_tokens=self.cfg.gcg.max_tokens,
            **kwargs,
        )

    def summary(self, frame: pd.DataFrame) -> dict:
        return accuracy_summary(frame, self.eval_cfg.bootstrap, self.eval_cfg.seed)

    def fewshot(self, retain: pd.DataFrame) -> None:
        """The same k retain shots in front of every scored question."""
        frames = fewshot_attack(
            self.model,
            self.tokenizer,
            self.eval_set,
            retain,
            self.cfg.fewshot,
            self.cfg.seed,
            self.eval_cfg,
            self.hooks,
            self.cfg.gcg.max_tokens,
        )
        for k, by_model in frames.items():
            for name, frame in by_model.items():
                if k == 0:
                    self.zero_shot[name] = frame
                summary = self.summary(frame)
                self.accuracy["fewshot"].setdefault(name, {})[str(k)] = summary
                self.metrics["fewshot"][name][str(k)] = summary["acc"]
                self.log(f"few-shot k={k} {name}: acc {summary['acc']:.3f}")
        self.metrics["fewshot"]["n"] = len(self.eval_set)

    def gcg(self, forget: pd.DataFrame):
        """One suffix per model, optimised over `n_questions` forget questions."""
        targets = deterministic_subset(forget, self.cfg.n_questions, self.cfg.seed + 1)
        prompts = gcg_prompts(self.tokenizer, targets, self.eval_cfg.format)
        vocab = self.model.get_input_embeddings().num_embeddings
        allowed = allowed_token_mask(self.tokenizer, vocab, self.cfg.gcg.allow_non_ascii)
        target_keys = set(zip(targets["question"], targets["subject"], strict=True))
        held_out = [
            (q, s) not in target_keys
            for q, s in zip(self.eval_set["question"], self.eval_set["subject"], strict=True)
        ]
        results, per_step, curves = {}, {}, []
        for name in self.models:
            with maybe_steer(self.model, self.hooks[name]):
                t0 = time.perf_counter()
                result = run_gcg(
                    self.model, self.tokenizer, prompts, self.cfg.gcg, allowed, progress=True
                )
                per_step[name] = round((time.perf_counter() - t0) / max(1, len(result.losses)), 2)
                frame = self.evaluate(suffix=result.best_string)
                curve = self._budget_curve(result, {result.best_string: frame})
                per_question = self._per_question(targets, prompts, allowed, result)
                if name not in self.zero_shot:
                    self.zero_shot[name] = self.evaluate()
            results[name] = result
            self.metrics["gcg"][name] = self._gcg_metrics(name, result, frame, frame[held_out])
            self.metrics["gcg"][name]["acc_by_step"] = curve
            self.metrics["gcg"][name].update(per_question)
            steps = len(result.losses)
            curves.append(pd.DataFrame({"step": [0], "model": [name], "loss": [result.init_loss]}))
            curves.append(
                pd.DataFrame({"step": range(1, steps + 1), "model": name, "loss": result.losses})
            )
        self.metrics["gcg"]["n_questions"] = len(targets)
        self.metrics["gcg"]["n_eval"] = len(self.eval_set)
        return targets, results, per_step, pd.concat(curves, ignore_index=True)

    def _per_question(self, targets, prompts, allowed, universal: GCGResult) -> dict:
        """With `gcg_per_question`: the target questions answered with their own suffix
        (one GCG run each, the same budget) beside those answered with the shared one."""
        if not self.cfg.gcg_per_question:
            return {}
        own = []
        for i in range(len(targets)):
            result = run_gcg(self.model, self.tokenizer, [prompts[i]], self.cfg.gcg, allowed)
            frame = self.evaluate(targets.iloc[[i]], suffix=result.best_string)
            own.append(bool(frame["correct"].iloc[0]))
        shared = self.evaluate(targets, suffix=universal.best_string)["correct"]
        return {
            "targets_acc_per_question": float(np.mean(own)),
            "targets_acc_universal": float(shared.mean()),
        }

    def _budget_curve(self, result: GCGResult, scored: dict[str, pd.DataFrame]) -> dict[str, float]:
        """Accuracy with the suffix GCG held at step 0 (its initial string) and every
        `gcg_eval_every` steps: what a smaller budget would have found. `scored`: results
        already computed, by suffix (each suffix is scored once)."""
        steps = len(result.losses)
        every = max(1, self.cfg.gcg_eval_every)
        suffixes = {0: self.cfg.gcg.optim_str_init.strip()}
        suffixes.update({s: result.strings[s - 1] for s in range(every, steps + 1, every)})
        curve = {}
        for step, suffix in suffixes.items():
            # a skipped step (no candidate left) holds "": the question without a suffix
            if suffix not in scored:
                scored[suffix] = self.evaluate(suffix=suffix)
            curve[str(step)] = float(scored[suffix]["correct"].mean())
        return curve

    def _gcg_metrics(self, name: str, result: GCGResult, frame, held_out) -> dict:
        summary = self.summary(frame)
        self.accuracy["gcg"][name] = summary
        out = {
            "acc": summary["acc"],
            "acc_norm": summary["acc_norm"],
            "acc_no_suffix": float(self.zero_shot[name]["correct"].mean()),
            "acc_held_out": float(held_out["correct"].mean()) if len(held_out) else float("nan"),
            "final_loss": result.best_loss,
            "init_loss": result.init_loss,
            "steps": len(result.losses),
        }
        self.log(
            f"GCG {name}: loss {result.init_loss:.3f} -> {result.best_loss:.3f}, "
            f"acc {out['acc_no_suffix']:.3f} -> {summary['acc']:.3f} "
            f"with suffix {result.best_string!r}"
        )
        return out

    def gibberish(self, suffixes: dict[str, str]) -> list[dict]:
        """Greedy continuations with and without each suffix, scored by the unsteered model."""
        g = self.cfg.gibberish
        gib_set = self.eval_set.head(g.n_prompts)
        settings = {}
        for name in self.models:
            settings[name] = (name, "")
            settings[f"{name}_suffix"] = (name, suffixes[name])
        batch = self.eval_cfg.batch_size
        by_setting = {}
        for setting, (name, suffix) in settings.items():
            texts = prompt_texts(gib_set, self.eval_cfg.format, suffix)
            # cached decoding, the gate followed across steps by the hook (EOS dropped)
            generated = greedy_generate(
                self.model, self.tokenizer, texts, self.hooks[name], g.max_new_tokens, batch
            )
            conts = [c.new_ids for c in generated]
            ppl = continuation_perplexities(self.model, self.tokenizer, texts, conts, batch)
            decoded = [self.tokenizer.decode(c, skip_special_tokens=True) for c in conts]
            leaks = [
                names_answer(text, list(row.choices), int(row.answer), self.eval_cfg.format)
                for text, row in zip(decoded, gib_set.itertuples(index=False), strict=True)
            ]
            boot, seed = self.eval_cfg.bootstrap, self.eval_cfg.seed
            summary = fluency_summary(
                ppl, g.fluent_ppl, conts, g.min_distinct_2, g.max_repeat, boot, seed
            )
            summary["leak_share"] = float(np.mean(leaks)) if leaks else 0.0
            summary["leak_share_ci"] = bootstrap_ci(np.array(leaks, dtype=float), boot, seed)
            self.metrics["gibberish"][setting] = summary
            by_setting[setting] = (texts, conts, ppl, decoded, leaks)
        samples = []
        for i in range(min(g.n_samples, len(gib_set))):
            sample = {"question": gib_set.iloc[i]["question"]}
            for setting, (texts, conts, ppl, decoded, leaks) in by_setting.items():
                sample[setting] = {
                    "prompt": texts[i],
                    "continuation": decoded[i],
                    "perplexity": ppl[i],
                    "distinct_2": distinct_n(conts[i], 2),
                    "longest_repeat": longest_repeat(conts[i]),
                    "repetitive": is_repetitive(conts[i], g.min_distinct_2, g.max_repeat),
                    "names_answer": leaks[i],
                }
            samples.append(sample)
        self.metrics["gibberish"].update(
            fluent_ppl=g.fluent_ppl,
            min_distinct_2=g.min_distinct_2,
            max_repeat=g.max_repeat,
            max_new_tokens=g.max_new_tokens,
            n_prompts=len(gib_set),
        )
        return samples


def run_attacks(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: pd.DataFrame,
    retain: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: AttackConfig,
    clock: PhaseClock | None = None,
    log: Callable[[str], None] = print,
) -> AttackOutputs:
    """Few-shot (retain shots before each forget question), GCG and gibberish, each against
    every model in `hooks` ("baseline": None, "steered": the clamp hook; one or both).
    `clock`, when started before loading, times the loading as its first phase."""
    clock = clock or PhaseClock()
    run = _AttackRun(
        model, tokenizer, hooks, cfg, deterministic_subset(forget, cfg.n_eval, cfg.seed), log
    )
    timings = {"load": clock.lap()}
    run.fewshot(retain)
    timings["fewshot"] = clock.lap()
    targets, results, per_step, curves = run.gcg(forget)
    timings["gcg"] = clock.lap()
    samples = run.gibberish({name: r.best_string for name, r in results.items()})
    timings["gibberish"] = clock.lap()
    timings["total"] = {
        key: round(sum(t[key] for t in timings.values()), 1) for key in ("wall_s", "cpu_s")
    }
    run_info = {
        "total_seconds": timings["total"]["wall_s"],
        "stage_times": timings,
        "gcg_seconds_per_step": per_step,
        "threads": torch.get_num_threads(),
        "n_eval": len(run.eval_set),
    }
    suffixes = _suffixes_record(cfg.gcg, targets, results, samples)
    return AttackOutputs(run.metrics, run.accuracy, suffixes, curves, run_info)


def _suffixes_record(
    gcg: GCGConfig, targets: pd.DataFrame, results: dict[str, GCGResult], samples: list[dict]
) -> dict:
    return {
        "gcg_config": {f.name: getattr(gcg, f.name) for f in fields(gcg)},
        "target_questions": targets["question"].tolist(),
        "suffixes": {
            name: {
                "suffix": r.best_string,
                "token_ids": r.best_ids,
                "loss": r.best_loss,
                "init_loss": r.init_loss,
                "candidates_per_step": r.n_candidates,
            }
            for name, r in results.items()
        },
        "samples": samples,
    }
