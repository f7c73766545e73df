"""Shots before each scored forget question: the `icl` family (in-context relearning: k
solved forget-topic questions from the dev half, so no scored question is ever shown
solved) and the `fewshot` family (k solved retain questions). Shot sets are nested across k
(`draw_shots`); k = 0 is the unattacked reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, KeptRows, add_setting
from sae_unlearn.attacks.fewshot import fewshot_attack
from sae_unlearn.attacks.reference import no_attack
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.steering import ClampHook


@dataclass(frozen=True)
class ICLConfig:
    ks: tuple[int, ...] = (0, 1, 4, 16)  # 0: no shots, the reference on the same questions
    seed: int = 0


def icl_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pool: pd.DataFrame,
    scored: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: ICLConfig,
    eval_cfg: EvalConfig,
    max_tokens: int = 512,
    log: Callable[[str], None] = print,
    reference: Mapping | None = None,
    pool_name: str = "dev-half forget",
    rows: KeptRows | None = None,
) -> FamilyOutputs:
    """Per k and model: accuracy on the `scored` questions with k shots from `pool` (for
    icl the test half and the dev half of the forget questions: `subsets.pool_and_scored`;
    for fewshot the retain questions as `pool`). `reference` (`reference.no_attack`) gives
    the k = 0 results instead of scoring them here; `rows`: `KeptRows`."""
    given = {name: no_attack(reference, name) for name in hooks}
    known = 0 in cfg.ks and all(frame is not None for frame in given.values())
    ks = [k for k in cfg.ks if not (known and k == 0)]
    frames = fewshot_attack(
        model,
        tokenizer,
        scored,
        pool,
        ks,
        cfg.seed,
        eval_cfg,
        hooks,
        max_tokens,
        gates=True,
        pool_name=pool_name,
        rows=rows,
    )
    if known:
        frames[0] = given
    out = FamilyOutputs()
    what = "in-context" if pool_name == "dev-half forget" else f"{pool_name} shots"
    for k in cfg.ks:
        for name, frame in frames[k].items():
            fig = add_setting(out, name, f"k={k}", frame, eval_cfg.bootstrap, eval_cfg.seed)
            log(f"{what} k={k} {name}: acc {fig['acc']:.3f}")
    out.metrics.update(n=len(scored), pool=len(pool))
    return out
