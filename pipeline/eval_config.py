"""The one reading of evaluate.* (and the top-level seed) into an `EvalConfig`, for every
stage that scores questions: evaluate-baseline, evaluate and the attack stages."""

from __future__ import annotations

from pipeline.params import Params
from sae_unlearn.evaluation.config import EvalConfig


def eval_config(p: Params, fmt: str | None = None, batch_size: int | None = None) -> EvalConfig:
    """evaluate.* with the CLI's `--format` / `--batch-size` overrides when given."""
    return EvalConfig(
        format=p.pick(fmt, "evaluate.format"),
        batch_size=int(p.pick(batch_size, "evaluate.batch_size")),
        bootstrap=int(p.get("evaluate.bootstrap")),
        seed=int(p.get("seed")),
    )
