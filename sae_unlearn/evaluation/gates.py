"""Where the clamp hook's gate opened while questions were scored: why a benign question failed.

The hook's `trace` records, per forward, the gate (`clamp_gated` rows; None without them)
and where any action edited a latent. A `GateRecorder` reads it around each of the scorer's
forwards and keeps, per scored sequence (a context and one continuation) and in sequence
order, whether the gate was open at each position that a scored prediction reads: every
position but the last continuation token. Hooks without a gate count as open where they
edited. Dense batches and packed prefix trees give the same marks: the scorer says which
row and columns hold each sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation.requests import Request, TokenPair
from sae_unlearn.steering import ClampHook

GATE_COLUMNS = ("gate_opened", "gate_position", "gate_token")


def open_mask(trace: Sequence[tuple]) -> torch.Tensor:
    """`[rows, columns]` of one scorer forward: the gate where the hook has one, else where
    it edited (entries of several forwards of the same rows follow each other)."""
    if not trace:
        raise ValueError(
            "the clamp hook ran in no forward while scoring; attach it with `steer` first"
        )
    parts = [(gate if gate is not None else edited).detach().cpu() for _, gate, edited in trace]
    return torch.cat(parts, dim=-1)


class GateRecorder:
    """The open mask of each scored sequence, built up forward by forward."""

    def __init__(self, hook: ClampHook, n_sequences: int):
        self.hook = hook
        self.masks: list[list[np.ndarray]] = [[] for _ in range(n_sequences)]
        self._mask: torch.Tensor | None = None
        self._trace: list = []

    @contextmanager
    def forward(self):
        """Around one scorer forward: the hook's trace of it becomes the current mask."""
        previous, self.hook.trace = self.hook.trace, []
        try:
            yield self
            self._mask = open_mask(self.hook.trace)
            self._trace = self.hook.trace
        finally:
            self.hook.trace = previous

    def take(self, sequence: int, row: int, columns) -> None:
        """Sequence `sequence`'s next positions sit at `columns` of `row` of the last forward."""
        self.masks[sequence].append(self._mask[row, columns].numpy().astype(bool))

    def edited(self) -> torch.Tensor:
        """`[rows, columns]` of the last forward: where the hook changed the residual stream
        (an open gate with nothing to clamp changes nothing); built only when asked for."""
        return torch.cat([e.detach().cpu() for _, _, e in self._trace], dim=-1)

    def sequence(self, i: int) -> np.ndarray:
        return np.concatenate(self.masks[i]) if self.masks[i] else np.zeros(0, dtype=bool)


def gate_columns(
    recorder: GateRecorder,
    requests: Sequence[Request],
    pairs: Sequence[TokenPair],
    tokenizer: PreTrainedTokenizerBase,
) -> dict[str, list]:
    """Per request: `gate_opened` (open at any recorded position of its prompt or of any
    choice's continuation), `gate_position` (the prompt token where it first opened, BOS
    counted as 0; None when it did not open in the prompt) and `gate_token` (that token's
    text, decoded with `tokenizer`; None likewise)."""
    out: dict[str, list] = {name: [] for name in GATE_COLUMNS}
    k = 0
    for r in requests:
        seqs = range(k, k + len(r.continuations))
        k += len(r.continuations)
        n_ctx = len(pairs[seqs[0]][0])
        masks = [recorder.sequence(i) for i in seqs]
        prompt = np.zeros(n_ctx, dtype=bool)
        for m in masks:
            prompt |= m[:n_ctx]
        position = int(prompt.argmax()) if prompt.any() else None
        out["gate_opened"].append(bool(any(m.any() for m in masks)))
        out["gate_position"].append(position)
        token = None
        if position is not None:
            token = tokenizer.decode([pairs[seqs[0]][0][position]])
        out["gate_token"].append(token)
    return out


def gate_summary(results: pd.DataFrame) -> dict:
    """How many questions the gate opened on (`opened`, `share`), and in the prompt."""
    opened = results["gate_opened"].to_numpy(bool)
    in_prompt = results["gate_position"].notna().to_numpy(bool)
    n = len(results)
    return {
        "opened": int(opened.sum()),
        "share": float(opened.mean()) if n else 0.0,
        "in_prompt": int(in_prompt.sum()),
    }
