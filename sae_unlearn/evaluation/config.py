"""The evaluation settings: prompt format, batch size and bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from sae_unlearn.choices import EVAL_FORMATS
from sae_unlearn.errors import UserError

FORMATS = EVAL_FORMATS


@dataclass(frozen=True)
class EvalConfig:
    format: str = "cloze"
    batch_size: int = 16
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"evaluate.format={self.format!r}; use one of {FORMATS}")
