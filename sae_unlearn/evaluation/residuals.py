"""The unsteered residual stream of packed evaluation rows, kept for the steered evaluation.

Below the clamp hook's block, a steered forward computes exactly what the unsteered one did:
nothing edits the residual stream there. The baseline evaluation therefore keeps, for every
packed row it scores, the residual stream after the block before the hook's (`RowResiduals`).
The steered evaluation of the same rows starts from it, running only the hook's block and
those after it: on the embedded default 9 of Gemma 3 270M's 18 blocks are skipped for every
row, half of what the steered evaluation's forwards cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_path
from sae_unlearn.models.layers import num_layers

RESIDUALS_SUFFIX = ".residuals.safetensors"
# How far a recomputed row may stray from the kept one, relative to its norm. The same
# kernels give the same bits; another device rounds in the last bits (about 1e-7 in float32,
# 4e-3 in bfloat16); another model or checkpoint differs by far more.
RESIDUAL_TOLERANCE = 1e-4
FIX = "Fix: rerun evaluate-baseline with this model and these questions and settings"


@dataclass
class RowResiduals:
    """Per packed row of one question set: its tokens, and the residual stream after decoder
    block `block` at each of them (`[n_tokens, d_model]`), as the unsteered model computed
    it. An unsteered scoring fills it (`score_sequences(..., residuals=)`); a steered scoring
    of the same rows starts from it (`Unsteered.residuals`)."""

    block: int
    source: str = "unsteered residuals"
    tokens: list[torch.Tensor] = field(default_factory=list)
    hidden: list[torch.Tensor] = field(default_factory=list)

    def add(self, tokens: Sequence[int], hidden: torch.Tensor) -> None:
        self.tokens.append(torch.as_tensor(list(tokens), dtype=torch.long))
        self.hidden.append(hidden.detach().to("cpu").clone())

    def row(self, r: int, device, dtype: torch.dtype) -> torch.Tensor:
        """Row `r`'s residuals as a batch of one, where the model computes."""
        return self.hidden[r][None].to(device, dtype)

    def check_rows(self, rows: Sequence[Sequence[int]]) -> None:
        """The rows about to be scored must be the kept ones, token for token."""
        if len(rows) != len(self.tokens):
            raise UserError(
                f"{self.source} holds {len(self.tokens)} packed rows, but these questions pack "
                f"into {len(rows)}: they are of other questions or another format. {FIX}"
            )
        for r, (kept, tokens) in enumerate(zip(self.tokens, rows, strict=True)):
            if kept.tolist() != list(tokens):
                raise UserError(
                    f"{self.source}: packed row {r} holds other tokens than these questions "
                    f"give (another tokenizer, format or template). {FIX}"
                )

    def check_values(self, r: int, computed: torch.Tensor) -> None:
        """Row `r` recomputed by the model at hand must match the kept one."""
        kept = self.hidden[r].to(computed.device, torch.float32)
        computed = computed.float()
        error = float((computed - kept).norm() / kept.norm().clamp_min(1e-12))
        if computed.shape != kept.shape or error > RESIDUAL_TOLERANCE:
            raise UserError(
                f"{self.source}: packed row {r}'s residual stream after block {self.block} "
                f"differs from this model's by {error:.2e} of its norm: it was computed by "
                f"another model. {FIX}"
            )


def kept_block(model: torch.nn.Module, hook_layer: int) -> int | None:
    """The block whose output the rows keep for a hook at `hook_layer`: the one below it;
    None where no block is below the hook or the model lacks that layer (the SAE stages
    refuse such a layer; the questions are scored from block 0 all the same)."""
    return hook_layer - 1 if 0 < hook_layer < num_layers(model) else None


def write_residuals(path: Path, residuals: RowResiduals) -> None:
    """One safetensors file: every row's tokens and residuals end to end, and the row lengths."""
    tensors = {
        "tokens": torch.cat(residuals.tokens),
        "lengths": torch.tensor([len(t) for t in residuals.tokens], dtype=torch.long),
        "hidden": torch.cat(residuals.hidden).contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"block": str(residuals.block)})


def read_residuals(path: Path) -> RowResiduals:
    """The residuals `write_residuals` wrote; a damaged file is refused, naming it."""
    try:
        with safe_open(str(path), "pt") as handle:
            block = int((handle.metadata() or {})["block"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        lengths = tensors["lengths"].tolist()
        tokens = list(torch.split(tensors["tokens"], lengths))
        hidden = list(torch.split(tensors["hidden"], lengths))
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as exc:
        raise UserError(
            f"{path} is not a residuals file of evaluate-baseline ({exc}). {FIX}"
        ) from None
    return RowResiduals(block, str(path), tokens, hidden)


def residuals_path(folder: Path, role: str) -> Path:
    return Path(folder) / f"{role}{RESIDUALS_SUFFIX}"


def read_role_residuals(folder: Path, roles: Iterable[str]) -> dict[str, RowResiduals]:
    """The kept residuals of each role that has them in `folder` (an older baseline, or one
    without a hook layer, has none: those roles are scored from the first block)."""
    return {
        role: read_residuals(residuals_path(folder, role))
        for role in roles
        if residuals_path(folder, role).exists()
    }
