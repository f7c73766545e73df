"""In-context relearning: k solved forget-topic questions before each forget question.

The shots come from the dev half of the forget questions and the test half is scored, so
no scored question is ever shown solved. Shot sets are nested across k (`draw_shots`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, add_setting
from sae_unlearn.attacks.fewshot import fewshot_attack
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
) -> FamilyOutputs:
    """Per k and model: accuracy on the `scored` questions with k shots from `pool` (the
    test half and the dev half of the forget questions: `subsets.pool_and_scored`)."""
    frames = fewshot_attack(
        model,
        tokenizer,
        scored,
        pool,
        cfg.ks,
        cfg.seed,
        eval_cfg,
        hooks,
        max_tokens,
        gates=True,
        pool_name="dev-half forget",
    )
    out = FamilyOutputs()
    for k, by_model in frames.items():
        for name, frame in by_model.items():
            fig = add_setting(out, name, f"k={k}", frame, eval_cfg.bootstrap, eval_cfg.seed)
            log(f"in-context k={k} {name}: acc {fig['acc']:.3f}")
    out.metrics.update(n=len(scored), pool=len(pool))
    return out
