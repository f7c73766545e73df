"""attack-family FAMILY: one attack family (`icl`, `evasion`) against one model.

DVC runs each family as a stage pair: `--model baseline` (attack-<family>-baseline) does not
read the clamp, so a clamp sweep point does not rerun it; `--model steered`
(attack-<family>) attacks the steered model, joins the baseline's half, and writes
`<families_dir>/<family>/` and `metrics/attack_<family>.json` (per model and setting:
accuracy with its 95% interval, and the share of prompts the steered model's gate opened on).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import typer

from pipeline.attack import attack_model
from pipeline.clamp_file import clamp_file
from pipeline.params import Params, ParamsOption, family_metrics_path
from pipeline.timing import record_run_time
from sae_unlearn.attacks.evasion import EvasionConfig, check_perturbations, evasion_attack
from sae_unlearn.attacks.family import (
    FAMILIES,
    FamilyOutputs,
    join_family_halves,
    read_family_half,
    write_family_half,
)
from sae_unlearn.attacks.icl import ICLConfig, icl_attack
from sae_unlearn.attacks.perturb import filler_paragraph
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.attacks.synonyms import read_synonyms
from sae_unlearn.data import prepared_path, read_question_file
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation import EvalConfig, checked_clamp, load_clamp_hook
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from sae_unlearn.io import write_json

MODEL_CHOICES = ("baseline", "steered")


def family_dirs(p: Params, family: str) -> tuple[Path, Path]:
    root = Path(p.get("attack.families_dir"))
    return root / f"{family}_baseline", root / family


class _Plan:
    """A family's config and inputs, read and checked before any model loads."""

    def __init__(self, family: str, p: Params, forget: pd.DataFrame) -> None:
        self.family, self.p = family, p
        self.eval_cfg = EvalConfig(
            format=p.get("evaluate.format"),
            batch_size=p.get("evaluate.batch_size"),
            bootstrap=p.get("evaluate.bootstrap"),
            seed=p.get("seed"),
        )
        self.forget, self.n_eval = forget, p.get("attack.n_eval")
        self.max_tokens = p.get("attack.max_tokens")
        seed = p.get("attack.seed")
        extra: dict = {}
        if family == "icl":
            self.cfg = ICLConfig(ks=tuple(p.get("attack.icl.k")), seed=seed)
        else:
            e = p.get("attack.evasion")
            self.cfg = EvasionConfig(
                perturbations=tuple(e["perturbations"]),
                noise_rate=e["noise_rate"],
                min_split=e["min_split"],
                filler_words=e["filler_words"],
                seed=seed,
            )
            check_perturbations(self.cfg.perturbations)
            corpus = prepared_path(Path(p.get("data.dir")), "retain", "corpus")
            if not corpus.is_file():
                raise UserError(f"no retain corpus at {corpus}. Fix: run `dvc repro prepare-data`")
            documents = pd.read_parquet(corpus, columns=["text"])["text"].tolist()
            self.filler = filler_paragraph(documents, self.cfg.filler_words)
            self.synonyms = read_synonyms(e["synonyms"])
            table = json.dumps(self.synonyms, sort_keys=True).encode()
            extra = {"filler": self.filler, "synonyms_sha256": hashlib.sha256(table).hexdigest()}
        self.record = {
            "config": json.loads(
                json.dumps(
                    {
                        "family": family,
                        **asdict(self.cfg),
                        "evaluation": asdict(self.eval_cfg),
                        "n_eval": self.n_eval,
                        "max_tokens": self.max_tokens,
                        **extra,
                    }
                )
            ),
            "forget": question_fingerprint(forget),
        }

    def run(self, model, tokenizer, hooks) -> FamilyOutputs:
        if self.family == "icl":
            return icl_attack(
                model,
                tokenizer,
                self.forget,
                hooks,
                self.cfg,
                self.eval_cfg,
                self.n_eval,
                self.max_tokens,
                log=typer.echo,
            )
        questions = deterministic_subset(self.forget, self.n_eval, self.cfg.seed)
        return evasion_attack(
            model,
            tokenizer,
            questions,
            hooks,
            self.cfg,
            self.eval_cfg,
            self.filler,
            self.synonyms,
            self.max_tokens,
            log=typer.echo,
        )


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
    forget = read_question_file(
        forget_questions or prepared_path(Path(p.get("data.dir")), "forget", "questions"), False
    )
    plan = _Plan(family, p, forget)
    baseline_dir, joined_dir = family_dirs(p, family)
    hook_of = None
    if model_choice == "steered":
        sae_path = Path(p.pick(sae_dir, "sae.dir"))
        clamp_cfg = checked_clamp(sae_path, clamp_file(p, p.pick(clamp, "attack.clamp")))
        baseline_half = read_family_half(baseline_dir, plan.record, family)

        def hook_of(model):
            return load_clamp_hook(model, sae_path, clamp_cfg)

    model, tokenizer = attack_model(p, {"model_dir": model_dir})
    hooks = {model_choice: hook_of(model) if hook_of else None}
    stage = f"attack-{family}" + ("-baseline" if model_choice == "baseline" else "")
    with record_run_time(stage=stage):
        outputs = plan.run(model, tokenizer, hooks)
    if model_choice == "baseline":
        write_family_half(outputs, plan.record, baseline_dir)
        typer.echo(f"{family} baseline half -> {baseline_dir}")
        return
    result = join_family_halves(baseline_half, outputs)
    write_family_half(result, plan.record, joined_dir)
    write_json(family_metrics_path(p, family), result.metrics)
    typer.echo(f"{family} -> {joined_dir}, {family_metrics_path(p, family)}")
