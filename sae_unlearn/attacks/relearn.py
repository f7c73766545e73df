"""Relearning by fine-tuning: does the knowledge come back after a few steps on forget text?

The closed-weights fine-tuning API scenario: the provider keeps the clamp hook attached while
a user fine-tunes on `n_passages` forget-corpus passages (`seq_len` tokens each) for `steps`
steps, with LoRA adapters (peft) or full fine-tuning of the last `top_layers` blocks. Forget
accuracy (test half, as icl and whitebox score it) and retain accuracy are measured at step 0
and every `eval_every` steps, baseline vs steered (Lucki et al. 2024 undo most unlearning
methods this way). Each model is fine-tuned in its own deep copy: the model passed in never
changes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, add_setting, frozen
from sae_unlearn.attacks.reference import no_attack
from sae_unlearn.choices import RELEARN_METHODS
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.metrics import accuracy_summary
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.models.layers import decoder_layers
from sae_unlearn.steering import ClampHook

# Every linear map of a Gemma block (attention and MLP): LoRA's usual full coverage.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class RelearnConfig:
    method: str = "lora"  # lora | top_layers
    n_passages: int = 8
    seq_len: int = 128
    batch_size: int = 2
    steps: int = 4
    eval_every: int = 4
    lr: float = 1e-3
    lora_rank: int = 8
    top_layers: int = 2  # top_layers: the last this many blocks are trained
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in RELEARN_METHODS:
            raise UserError(
                f"attack.relearn.method {self.method!r}: choose one of {list(RELEARN_METHODS)}"
            )
        for name in (
            "n_passages",
            "seq_len",
            "batch_size",
            "eval_every",
            "lora_rank",
            "top_layers",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"attack.relearn.{name} must be >= 1")
        if self.steps < 0:
            raise UserError("attack.relearn.steps must be >= 0")


def forget_passages(
    tokenizer: PreTrainedTokenizerBase, documents: Sequence[str], n: int, seq_len: int, seed: int
) -> torch.Tensor:
    """`[n, seq_len]` token ids: `n` seeded picks among the non-overlapping `seq_len`-token
    chunks of the documents (each document BOS-first, as the cache reads it)."""
    chunks = []
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for doc in documents:
        ids = bos + tokenizer(doc, add_special_tokens=False)["input_ids"]
        chunks += [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    if len(chunks) < n:
        raise UserError(
            f"the forget corpus holds {len(chunks)} passages of {seq_len} tokens, fewer than "
            f"attack.relearn.n_passages={n}. Fix: lower n_passages or seq_len"
        )
    pick = np.random.default_rng(seed).choice(len(chunks), size=n, replace=False)
    return torch.tensor([chunks[i] for i in sorted(pick)])


def trainable_copy(model: nn.Module, cfg: RelearnConfig) -> tuple[nn.Module, list[nn.Parameter]]:
    """A deep copy of `model` to fine-tune, and the parameters that train in it."""
    tuned = copy.deepcopy(model)
    for p in tuned.parameters():
        p.requires_grad_(False)
    if cfg.method == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        torch.manual_seed(cfg.seed)  # LoRA's A matrices are drawn at injection
        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=2 * cfg.lora_rank,
            lora_dropout=0.0,
            target_modules=LORA_TARGETS,
        )
        # Injected in place, so the copy keeps its own class and module paths (the clamp
        # hook and the scorer address it as they address the model).
        tuned = inject_adapter_in_model(lora, tuned)
        params = [p for n, p in tuned.named_parameters() if "lora_" in n]
    else:
        blocks = decoder_layers(tuned)
        if cfg.top_layers > len(blocks):
            raise UserError(
                f"attack.relearn.top_layers={cfg.top_layers}, but the model has {len(blocks)} "
                "blocks"
            )
        params = [p for block in blocks[-cfg.top_layers :] for p in block.parameters()]
    for p in params:
        p.requires_grad_(True)
    return tuned, params


def _lm_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch, labels=batch, use_cache=False).loss


def relearn_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    passages: torch.Tensor,
    forget: pd.DataFrame,
    retain: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: RelearnConfig,
    eval_cfg: EvalConfig,
    max_tokens: int = 512,
    log: Callable[[str], None] = print,
    reference: Mapping | None = None,
) -> FamilyOutputs:
    """Per model: `step=<s>` settings (forget accuracy, with `retain_acc` beside it) at step 0
    and every `eval_every` steps, and the training loss of every step. `reference`
    (`reference.no_attack`, forget and retain) gives step 0, where the adapters are still
    zero or the weights untouched, instead of scoring it here."""
    out = FamilyOutputs()
    checkpoints = sorted({0, cfg.steps, *range(cfg.eval_every, cfg.steps, cfg.eval_every)})
    order = np.random.default_rng(cfg.seed).permutation(cfg.steps * cfg.batch_size)
    rows = order % len(passages)  # a seeded walk over the passages, the same for each model
    losses: dict[str, list[float]] = {name: [] for name in hooks}
    with frozen(hooks.values()):  # the clamp stays as it is: no gradient for the SAE
        for name, hook in hooks.items():
            tuned, params = trainable_copy(model, cfg)
            optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
            with maybe_steer(tuned, hook):
                for step in range(cfg.steps + 1):
                    if step in checkpoints:
                        given = {r: no_attack(reference, name, r) for r in ("forget", "retain")}
                        if step > 0 or any(f is None for f in given.values()):
                            given = _scored(
                                tuned, tokenizer, forget, retain, hook, eval_cfg, max_tokens
                            )
                        _checkpoint(out, name, step, given, eval_cfg, log)
                    if step == cfg.steps:
                        break
                    batch = passages[rows[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
                    optimiser.zero_grad()
                    with torch.enable_grad():
                        loss = _lm_loss(tuned, batch.to(next(tuned.parameters()).device))
                        loss.backward()
                    optimiser.step()
                    losses[name].append(float(loss.detach()))
            del tuned, optimiser
    out.metrics.update(n=len(forget), n_retain=len(retain), passages=len(passages))
    out.records["losses"] = losses
    return out


def _scored(tuned, tokenizer, forget, retain, hook, eval_cfg, max_tokens) -> dict:
    with torch.no_grad():
        return {
            role: evaluate_questions(
                tuned, tokenizer, qs, eval_cfg, max_tokens=max_tokens, gates=hook
            )
            for role, qs in (("forget", forget), ("retain", retain))
        }


def _checkpoint(out, name, step, frames, eval_cfg, log) -> None:
    fig = add_setting(
        out, name, f"step={step}", frames["forget"], eval_cfg.bootstrap, eval_cfg.seed
    )
    retain_summary = accuracy_summary(frames["retain"], eval_cfg.bootstrap, eval_cfg.seed)
    fig["retain_acc"] = retain_summary["acc"]
    fig["retain_acc_ci"] = retain_summary["acc_ci"]
    log(f"relearn step {step} {name}: forget {fig['acc']:.3f}, retain {fig['retain_acc']:.3f}")
