"""Each attack family's plan: its config from attack.<family>, its inputs and runner, all
read and checked before any model loads. A plan's `record` is what the baseline's half must
share with the steered one (the config and the questions' fingerprints)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import typer

from pipeline.eval_config import eval_config
from pipeline.params import Params
from sae_unlearn.attacks.continuations import GenerationConfig, generation_attack
from sae_unlearn.attacks.evasion import EvasionConfig, check_perturbations, evasion_attack
from sae_unlearn.attacks.family import FamilyOutputs
from sae_unlearn.attacks.gcg import GCGConfig
from sae_unlearn.attacks.gcg_family import GCGAttackConfig, gcg_attack
from sae_unlearn.attacks.icl import ICLConfig, icl_attack
from sae_unlearn.attacks.perturb import filler_paragraph
from sae_unlearn.attacks.relearn import RelearnConfig, forget_passages, relearn_attack
from sae_unlearn.attacks.subsets import deterministic_subset, pool_and_scored
from sae_unlearn.attacks.synonyms import read_synonyms
from sae_unlearn.attacks.whitebox import WhiteboxConfig, check_pool, whitebox_attack
from sae_unlearn.data import prepared_path, read_question_file
from sae_unlearn.errors import MissingInputError, UserError, read_input
from sae_unlearn.evaluation.fingerprint import question_fingerprint
from sae_unlearn.io import read_json

# attack.gcg keys of this project's, not the optimiser's (GCGConfig takes the rest)
GCG_OURS = ("n_questions", "eval_every", "per_question")


@dataclass
class Plan:
    cfg: object
    attack: Callable[..., FamilyOutputs]  # called with model, tokenizer, hooks=, cfg=, **inputs
    inputs: dict
    record: dict
    # role -> the questions whose unattacked results the family takes from the evaluation
    reference: dict[str, pd.DataFrame] = field(default_factory=dict)


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


def prepared_questions(p: Params, role: str) -> pd.DataFrame:
    return read_question_file(prepared_path(Path(p.get("data.dir")), role, "questions"), False)


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


def _shots(family: str, p: Params, dev, scored, seed: int, n_eval) -> tuple:
    cfg = ICLConfig(ks=tuple(p.get(f"attack.{family}.k")), seed=seed)
    pool, name = (
        (dev, "dev-half forget") if family == "icl" else (prepared_questions(p, "retain"), "retain")
    )
    if max(cfg.ks, default=0) > len(pool):
        raise UserError(
            f"attack.{family}.k asks for {max(cfg.ks)} shots, but the {name} questions hold "
            f"{len(pool)}. Fix: lower attack.{family}.k"
        )
    inputs = {"pool": pool, "scored": scored, "pool_name": name}
    return cfg, icl_attack, inputs, {"pool": question_fingerprint(pool)}, {"forget": scored}


def _evasion(p: Params, dev, questions, seed: int, n_eval) -> tuple:
    e = p.get("attack.evasion")
    cfg = EvasionConfig(
        **{k: e[k] for k in ("noise_rate", "min_split", "filler_words")},
        perturbations=tuple(e["perturbations"]),
        seed=seed,
    )
    check_perturbations(cfg.perturbations)
    filler = filler_paragraph(_corpus(p, "retain"), cfg.filler_words)
    synonyms = read_synonyms(e["synonyms"])
    table = json.dumps(synonyms, sort_keys=True).encode()
    # the test half: the embedded synonym table was built from dev-half gate tokens
    inputs = {"questions": questions, "filler": filler, "synonyms": synonyms}
    extra = {"filler": filler, "synonyms_sha256": _sha256(table)}
    return cfg, evasion_attack, inputs, extra, {"forget": questions}


def _whitebox(p: Params, pool, scored, seed: int, n_eval) -> tuple:
    w = {k: v for k, v in p.get("attack.whitebox").items() if k != "layer"}
    w["bounds"] = tuple(w["bounds"])
    cfg = WhiteboxConfig(**w, layer=_whitebox_layer(p), seed=seed)
    check_pool(pool, cfg.n_train)
    return cfg, whitebox_attack, {"pool": pool, "scored": scored}, {}, {"forget": scored}


def _relearn(p: Params, dev, scored, seed: int, n_eval) -> tuple:
    cfg = RelearnConfig(**p.get("attack.relearn"), seed=seed)
    documents = _corpus(p, "forget")
    retain = deterministic_subset(prepared_questions(p, "retain"), n_eval, seed)

    def attack(model, tokenizer, cfg, **kwargs) -> FamilyOutputs:
        passages = forget_passages(tokenizer, documents, cfg.n_passages, cfg.seq_len, cfg.seed)
        return relearn_attack(model, tokenizer, passages, cfg=cfg, **kwargs)

    extra = {
        "retain": question_fingerprint(retain),
        "forget_corpus_sha256": _sha256("\x00".join(documents).encode()),
    }
    inputs = {"forget": scored, "retain": retain}
    return cfg, attack, inputs, extra, {"forget": scored, "retain": retain}


def _gcg(p: Params, pool, scored, seed: int, n_eval) -> tuple:
    g = p.get("attack.gcg")
    search = GCGConfig(
        max_tokens=p.get("attack.max_tokens"), **{k: v for k, v in g.items() if k not in GCG_OURS}
    )
    cfg = GCGAttackConfig(search, **{k: g[k] for k in GCG_OURS}, seed=seed)
    if len(pool) == 0:
        raise UserError(
            "GCG optimises over dev-half forget questions, but the dev half is empty. Fix: "
            "give more forget questions (data.forget_questions); the halves split by a hash"
        )
    return cfg, gcg_attack, {"pool": pool, "scored": scored}, {}, {"forget": scored}


def found_suffixes(folder: Path) -> dict[str, str]:
    """model -> the suffix GCG found, from a gcg half (or the joined folder)."""
    fix = "run the gcg attack first (`dvc repro attack-gcg` does)"
    if not (folder / "suffixes.json").is_file():
        raise MissingInputError(f"no GCG suffixes in {folder}. Fix: {fix}")
    data = read_input(folder / "suffixes.json", read_json, "GCG suffixes", fix)
    found = data.get("suffixes") if isinstance(data, dict) else None
    if not isinstance(found, dict) or not all(
        isinstance(s, dict) and isinstance(s.get("suffix"), str) for s in found.values()
    ):
        raise UserError(f"{folder / 'suffixes.json'} holds no suffixes by model. Fix: {fix}")
    return {name: s["suffix"] for name, s in found.items()}


def _generation(p: Params, dev, scored, seed: int, n_eval, model: str) -> tuple:
    cfg = GenerationConfig(**p.get("attack.generation"))
    baseline_gcg, joined_gcg = family_dirs(p, "gcg")
    suffixes = found_suffixes(baseline_gcg if model == "baseline" else joined_gcg)
    if model not in suffixes:
        raise UserError(f"the GCG results hold no {model} suffix. Fix: rerun the gcg attack")

    def attack(model_, tokenizer, hooks, cfg, eval_cfg, log, **_) -> FamilyOutputs:
        return generation_attack(model_, tokenizer, scored, hooks, cfg, eval_cfg, suffixes, log=log)

    # the halves must continue with the same baseline suffix
    return cfg, attack, {}, {"baseline_suffix": suffixes.get("baseline")}, {}


BUILDERS = {
    "evasion": _evasion,
    "whitebox": _whitebox,
    "relearn": _relearn,
    "gcg": _gcg,
}


def make_plan(family: str, p: Params, forget: pd.DataFrame, model: str) -> Plan:
    """The plan of `family` against `model` (baseline or steered), checked."""
    seed, n_eval = p.get("attack.seed"), p.get("attack.n_eval")
    # the dev half (shots, GCG targets, training questions) and the scored test half, once
    halves = pool_and_scored(forget, n_eval, seed)
    if family in ("fewshot", "icl"):
        parts = _shots(family, p, *halves, seed, n_eval)
    elif family == "generation":
        parts = _generation(p, *halves, seed, n_eval, model)
    else:
        parts = BUILDERS[family](p, *halves, seed, n_eval)
    cfg, attack, inputs, extra, reference = parts
    eval_cfg, max_tokens = eval_config(p), p.get("attack.max_tokens")
    config = {"family": family, **asdict(cfg), "evaluation": asdict(eval_cfg)}
    config.update(n_eval=n_eval, max_tokens=max_tokens, **extra)
    record = {"config": json.loads(json.dumps(config)), "forget": question_fingerprint(forget)}
    inputs = {**inputs, "eval_cfg": eval_cfg, "max_tokens": max_tokens, "log": typer.echo}
    return Plan(cfg, attack, inputs, record, reference)
