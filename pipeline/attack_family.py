"""attack-family FAMILY: one attack family (`icl`, `evasion`, `whitebox`, `relearn`) against
one model.

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
from pipeline.eval_config import eval_config
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
from sae_unlearn.attacks.relearn import RelearnConfig, forget_passages, relearn_attack
from sae_unlearn.attacks.subsets import deterministic_subset, pool_and_scored
from sae_unlearn.attacks.synonyms import read_synonyms
from sae_unlearn.attacks.whitebox import (
    WhiteboxConfig,
    check_pool,
    recovery,
    whitebox_attack,
)
from sae_unlearn.data import prepared_path, read_question_file
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation import checked_clamp, load_clamp_hook
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from sae_unlearn.io import write_json

MODEL_CHOICES = ("baseline", "steered")


def family_dirs(p: Params, family: str) -> tuple[Path, Path]:
    root = Path(p.get("attack.families_dir"))
    return root / f"{family}_baseline", root / family


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _corpus(p: Params, role: str) -> list[str]:
    path = prepared_path(Path(p.get("data.dir")), role, "corpus")
    if not path.is_file():
        raise UserError(f"no {role} corpus at {path}. Fix: run `dvc repro prepare-data`")
    return pd.read_parquet(path, columns=["text"])["text"].tolist()


def _whitebox_layer(p: Params) -> int:
    layer = p.get("attack.whitebox.layer")
    if layer is not None:
        return layer
    if p.get("sae.layer") < 1:
        raise UserError(
            "attack.whitebox.layer: the SAE sits after block 0, so no block comes before it. "
            "Fix: set attack.whitebox.layer"
        )
    return p.get("sae.layer") - 1


class _Plan:
    """A family's config, inputs and runner, read and checked before any model loads; its
    `record` is what the baseline's half must share with the steered one."""

    def __init__(self, family: str, p: Params, forget: pd.DataFrame) -> None:
        self.eval_cfg = eval_config(p)
        self.n_eval, self.max_tokens = p.get("attack.n_eval"), p.get("attack.max_tokens")
        self.common = {"eval_cfg": self.eval_cfg, "max_tokens": self.max_tokens, "log": typer.echo}
        seed, extra = p.get("attack.seed"), {}
        fingerprints = {"forget": question_fingerprint(forget)}
        if family == "icl":
            self.cfg = ICLConfig(ks=tuple(p.get("attack.icl.k")), seed=seed)
            pool, scored = pool_and_scored(forget, self.n_eval, seed)
            if max(self.cfg.ks, default=0) > len(pool):  # checked before the model loads
                raise UserError(
                    f"attack.icl.k asks for {max(self.cfg.ks)} shots, but the dev half of the "
                    f"forget questions holds {len(pool)}. Fix: lower attack.icl.k"
                )
            self.inputs = {"pool": pool, "scored": scored}
            self.attack = icl_attack
        elif family == "evasion":
            e = p.get("attack.evasion")
            self.cfg = EvasionConfig(
                **{k: e[k] for k in ("noise_rate", "min_split", "filler_words")},
                perturbations=tuple(e["perturbations"]),
                seed=seed,
            )
            check_perturbations(self.cfg.perturbations)
            filler = filler_paragraph(_corpus(p, "retain"), self.cfg.filler_words)
            synonyms = read_synonyms(e["synonyms"])
            table = json.dumps(synonyms, sort_keys=True).encode()
            extra = {"filler": filler, "synonyms_sha256": _sha256(table)}
            # the test half: the embedded synonym table was built from dev-half gate tokens
            _, questions = pool_and_scored(forget, self.n_eval, seed)
            self.inputs = {"questions": questions, "filler": filler, "synonyms": synonyms}
            self.attack = evasion_attack
        elif family == "whitebox":
            w = {k: v for k, v in p.get("attack.whitebox").items() if k != "layer"}
            w["bounds"] = tuple(w["bounds"])
            self.cfg = WhiteboxConfig(**w, layer=_whitebox_layer(p), seed=seed)
            pool, scored = pool_and_scored(forget, self.n_eval, seed)
            check_pool(pool, self.cfg.n_train)
            self.inputs = {"pool": pool, "scored": scored}
            self.attack = whitebox_attack
        else:
            self.cfg = RelearnConfig(**p.get("attack.relearn"), seed=seed)
            retain = read_question_file(
                prepared_path(Path(p.get("data.dir")), "retain", "questions"), False
            )
            self.documents = _corpus(p, "forget")
            _, scored = pool_and_scored(forget, self.n_eval, seed)
            retain = deterministic_subset(retain, self.n_eval, seed)
            fingerprints["retain"] = question_fingerprint(retain)
            extra = {"forget_corpus_sha256": _sha256("\x00".join(self.documents).encode())}
            self.inputs = {"forget": scored, "retain": retain}
            self.attack = self._relearn
        config = {"family": family, **asdict(self.cfg), "evaluation": asdict(self.eval_cfg)}
        config.update(n_eval=self.n_eval, max_tokens=self.max_tokens, **extra)
        self.record = {"config": json.loads(json.dumps(config)), **fingerprints}

    def _relearn(self, model, tokenizer, hooks, cfg, **kwargs) -> FamilyOutputs:
        passages = forget_passages(tokenizer, self.documents, cfg.n_passages, cfg.seq_len, cfg.seed)
        return relearn_attack(model, tokenizer, passages, hooks=hooks, cfg=cfg, **kwargs)

    def run(self, model, tokenizer, hooks) -> FamilyOutputs:
        return self.attack(
            model, tokenizer, hooks=hooks, cfg=self.cfg, **self.inputs, **self.common
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
    if family == "whitebox":
        result.metrics["recovery"] = recovery(result.metrics)
    write_family_half(result, plan.record, joined_dir)
    write_json(family_metrics_path(p, family), result.metrics)
    typer.echo(f"{family} -> {joined_dir}, {family_metrics_path(p, family)}")
