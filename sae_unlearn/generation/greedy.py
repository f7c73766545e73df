"""Greedy decoding with transformers' `generate` (KV cache, left-padded batches), recording
at which tokens the steering hook's gate opened."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.requests import encode_prompt, left_padded
from sae_unlearn.steering import ClampHook, steer


@dataclass
class Continuation:
    """A prompt and its greedy continuation (ids, EOS and what follows dropped), and per
    token whether the gate opened there: `clamp_gated` rows mark the token where their gate
    opened; configs without them mark every token where the hook changed a latent. The
    last generated token never runs through the model, so it is never marked."""

    prompt_ids: list[int]
    new_ids: list[int]
    prompt_marks: list[bool] = field(default_factory=list)
    new_marks: list[bool] = field(default_factory=list)


def read_prompts(prompts: Sequence[str] | None, path: Path | None) -> list[str]:
    """The `--prompt` texts, then the non-empty lines of `path`."""
    texts = list(prompts or [])
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"--prompts {path}: no such file; give a file of prompts, one a line")
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        texts += [line for line in lines if line.strip()]
    if not texts:
        raise UserError("no prompts: give --prompt TEXT (repeatable) or --prompts FILE")
    return texts


def _marks(trace: list, gated: bool) -> torch.Tensor:
    """`[B, columns]`: where the gate opened (gated hooks) or the hook edited (others), over
    the forwards of one `generate` call, which cover consecutive columns."""
    if gated:
        gate = torch.cat([g.cpu() for _, g, _ in trace], dim=1)
        before = torch.nn.functional.pad(gate[:, :-1], (1, 0))
        return gate & ~before
    return torch.cat([e.cpu() for _, _, e in trace], dim=1)


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    hook: ClampHook | None = None,
    max_new_tokens: int = 20,
    batch_size: int = 8,
) -> list[Continuation]:
    """Greedy continuations of `prompts` by `model.generate(use_cache=True)`, steered by
    `hook` when given, in left-padded batches."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id
    out: list[Continuation] = []
    for lo in range(0, len(prompts), batch_size):
        encoded = [encode_prompt(tokenizer, t) for t in prompts[lo : lo + batch_size]]
        ids, mask = left_padded(encoded, pad)
        width = ids.shape[1]
        context = steer(model, hook) if hook is not None else nullcontext()
        with context:
            if hook is not None:
                hook.trace = []
            try:
                result = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=pad,
                    eos_token_id=eos,
                )
                trace = hook.trace if hook is not None else None
            finally:
                if hook is not None:
                    hook.trace = None
        marks = _marks(trace, hook.sequence_level) if trace else None
        for j, e in enumerate(encoded):
            new = result[j, width:].tolist()
            if eos is not None and eos in new:
                new = new[: new.index(eos)]
            row = marks[j].tolist() if marks is not None else []
            row += [False] * (width + len(new) - len(row))
            out.append(Continuation(e, new, row[width - len(e) : width], row[width:][: len(new)]))
    return out
