"""White-box attacks: the ceiling for input attacks, and recovery inside the model.

- `soft_prompt`: `soft_tokens` continuous embeddings where GCG puts its suffix, optimised
  with Adam through the model (and its clamp hook) to raise the correct answers of the
  training questions.
- `residual_<bound>`: one vector added to the residual stream after block `layer` (before
  the SAE's hook when `layer` < the SAE's layer), with its norm held at most `bound` times
  the typical residual norm there (projected after each Adam step), while the clamp stays
  on, optimised to give back the unsteered model's next-token distributions at every
  position of the training prompts (KL; Post-Intervention Recovery, 2026). Fitted to the
  answers alone, one vector on 8 questions learned those answers and lowered accuracy on
  the others; matching the unsteered model everywhere undoes the clamp instead. The unsteered
  baseline has nothing to recover, so only a steered model gets this attack.

Both train on the dev half of the forget questions and are scored on the test half, so a
recovered answer is knowledge brought back, not an answer memorised. `recovery` (joined
from both halves): (attacked - steered) / (baseline - steered) per setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import pandas as pd
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs, add_setting, frozen
from sae_unlearn.attacks.gcg import embedding_scale, target_loss
from sae_unlearn.attacks.gcg_tokens import gcg_prompts
from sae_unlearn.attacks.reference import unattacked
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.forward import decoder, final_hidden, output_logits
from sae_unlearn.evaluation.gates import GateRecorder, gate_columns
from sae_unlearn.evaluation.prompts import answer_continuations, split_at_suffix
from sae_unlearn.evaluation.requests import build_requests, encode_pair, encode_prompt, per_request
from sae_unlearn.evaluation.results import results_frame
from sae_unlearn.evaluation.run import evaluate_questions, maybe_steer
from sae_unlearn.evaluation.scoring import score_sequences
from sae_unlearn.models.capture import capture_residuals, run_to_layers
from sae_unlearn.models.layers import check_layer, decoder_layers
from sae_unlearn.steering import ClampHook


@dataclass(frozen=True)
class WhiteboxConfig:
    n_train: int = 8  # dev-half forget questions the attacks optimise over
    soft_tokens: int = 20
    soft_steps: int = 6
    soft_lr: float = 0.05  # Adam step, in units of the embeddings' RMS
    layer: int = 8  # residual attack: after this block
    bounds: tuple[float, ...] = (0.1,)  # residual norm bounds, x the median token norm
    residual_steps: int = 6
    residual_lr: float = 0.1  # Adam step, in units of the bound
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "soft_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"attack.whitebox.{name} must be >= 1")
        if any(b <= 0 for b in self.bounds):
            raise UserError(f"attack.whitebox.bounds must be positive, got {list(self.bounds)}")


def check_pool(pool: pd.DataFrame, n_train: int) -> None:
    """The dev-half forget questions must hold the training questions the attacks fit on."""
    if len(pool) < n_train:
        raise UserError(
            f"attack.whitebox.n_train={n_train}, but the dev half of the forget questions "
            f"holds {len(pool)}. Fix: lower attack.whitebox.n_train"
        )


def residual_setting(bound: float) -> str:
    return f"residual_{bound:g}"


@contextmanager
def residual_added(model: nn.Module, layer: int, delta: torch.Tensor) -> Iterator[None]:
    """`delta` added to the residual stream after block `layer`, at every position."""
    block = decoder_layers(model)[layer]

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] + delta.to(output[0].dtype), *output[1:])
        return output + delta.to(output.dtype)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def embeddings_replaced(model: nn.Module, placeholder: int, soft: torch.Tensor) -> Iterator[None]:
    """Each run of `len(soft)` placeholder ids embeds as the soft vectors, in order (packed
    rows keep a question's context contiguous, so every run is whole)."""
    embedding = model.get_input_embeddings()

    def hook(_module, inputs, output):
        where = inputs[0] == placeholder
        if not where.any():
            return output
        rank = (where.cumsum(-1) - 1) % len(soft)
        out = output.clone()
        out[where] = soft.to(out.dtype)[rank[where]]
        return out

    handle = embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def unused_token(vocab_size: int, sequences: Sequence[Sequence[int]], avoid: set[int]) -> int:
    """The highest token id that no sequence holds (a placeholder that cannot collide)."""
    used = {t for seq in sequences for t in seq} | avoid
    for token in range(vocab_size - 1, -1, -1):
        if token not in used:
            return token
    raise ValueError("every token id is in use")  # pragma: no cover - vocab >> prompts


def scored_with_soft_prompt(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    fmt: str,
    soft: torch.Tensor,
    max_tokens: int,
    gates: ClampHook | None = None,
) -> pd.DataFrame:
    """Per-question results with the soft prompt where a suffix goes (packed scoring); with
    `gates` (an attached hook), where its gate opened, as `evaluate_questions` records it."""
    bos = 1 if tokenizer.bos_token_id is not None else 0
    requests = build_requests(questions, fmt)
    pieces = []
    for row in questions.itertuples(index=False):
        choices = list(row.choices)
        before, after = split_at_suffix(row.question, choices, row.subject, fmt)
        head = encode_prompt(tokenizer, before)
        for continuation in answer_continuations(choices, fmt):
            ctx, cont = encode_pair(tokenizer, after, continuation)
            pieces.append((head, ctx[bos:], cont))
    vocab = model.get_input_embeddings().num_embeddings
    avoid = {tokenizer.pad_token_id or 0}
    placeholder = unused_token(vocab, [h + a + c for h, a, c in pieces], avoid)
    pairs = [(h + [placeholder] * len(soft) + a, c) for h, a, c in pieces]
    recorder = GateRecorder(gates, len(pairs)) if gates is not None else None
    with torch.no_grad(), embeddings_replaced(model, placeholder, soft):
        scores = score_sequences(model, pairs, max_tokens=max_tokens, recorder=recorder)
    frame = results_frame(questions, requests, per_request(requests, [s for s, _ in scores]))
    if recorder is not None:
        for column, values in gate_columns(recorder, requests, pairs, tokenizer).items():
            frame[column] = values
    return frame


def typical_residual_norm(model: nn.Module, prompts, layer: int) -> float:
    """The median norm of the residual stream after block `layer` over the training
    prompts' tokens, the first (BOS) and the padding left out: Gemma's first position carries
    a norm tens of times the others' (an attention sink), which would dwarf every bound."""
    ids, mask = padded_prompts(model, prompts)
    with torch.no_grad(), capture_residuals(model, [layer], stop_after_last=True) as captured:
        hidden = run_to_layers(model, captured, input_ids=ids, attention_mask=mask)[layer]
    keep = mask.bool()
    keep[:, 0] = False
    return float(hidden[keep].norm(dim=-1).median())


def _adam_fit(
    param: torch.Tensor, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float, project
) -> list[float]:
    optimiser = torch.optim.Adam([param], lr=lr)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        with torch.enable_grad():
            loss = loss_fn()
            loss.backward()
        optimiser.step()
        with torch.no_grad():
            project(param)
        losses.append(float(loss.detach()))
    return losses


def soft_prompt_attack(
    model: nn.Module, prompts, init: torch.Tensor, cfg: WhiteboxConfig
) -> tuple[torch.Tensor, list[float]]:
    """Soft-prompt vectors fitted to the prompts' targets, from `init` (token ids)."""
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        soft = embedding(init[None])[0].clone()
        rms = float(embedding.weight.float().pow(2).mean().sqrt()) * embedding_scale(embedding)
    soft.requires_grad_(True)
    losses = _adam_fit(
        soft,
        lambda: target_loss(model, prompts, soft),
        cfg.soft_steps,
        cfg.soft_lr * rms,
        lambda _p: None,
    )
    return soft.detach(), losses


def padded_prompts(model: nn.Module, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts' whole ids (question, answer cue and answer), right-padded into one batch,
    and the mask of their real tokens."""
    device = next(model.parameters()).device
    seqs = [p.before + p.after + p.target for p in prompts]
    ids = torch.zeros((len(seqs), max(len(seq) for seq in seqs)), dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for j, seq in enumerate(seqs):
        ids[j, : len(seq)] = torch.tensor(seq)
        mask[j, : len(seq)] = 1
    return ids, mask


def prompt_logits(model: nn.Module, prompts) -> torch.Tensor:
    """Float logits `[n_tokens, vocab]` at every position of the prompts, the positions of
    all prompts concatenated."""
    ids, mask = padded_prompts(model, prompts)
    hidden = final_hidden(decoder(model), None, input_ids=ids, attention_mask=mask)
    return output_logits(model, hidden[mask.bool()]).float()


def residual_attack(
    model: nn.Module, prompts, reference: torch.Tensor, radius: float, cfg: WhiteboxConfig
) -> tuple[torch.Tensor, list[float]]:
    """A residual vector of norm <= `radius` after block `cfg.layer`, fitted from a small
    seeded start so the model's next-token log-probabilities at every position of the
    prompts match `reference` (the unsteered model's, `prompt_logits` of it)."""
    generator = torch.Generator().manual_seed(cfg.seed)  # drawn on the CPU: the same start anywhere
    embedding = model.get_input_embeddings()
    start = torch.randn(embedding.embedding_dim, generator=generator)
    start = (start * (0.01 * radius / start.norm())).to(embedding.weight.device)
    delta = start.requires_grad_(True)

    def loss_fn() -> torch.Tensor:
        with residual_added(model, cfg.layer, delta):
            logits = prompt_logits(model, prompts)
        logprobs = torch.log_softmax(logits, dim=-1)
        return torch.nn.functional.kl_div(
            logprobs, reference, log_target=True, reduction="batchmean"
        )

    def project(d: torch.Tensor) -> None:
        d.mul_(min(1.0, radius / max(float(d.norm()), 1e-12)))

    # Adam moves every coordinate by about lr, the vector by about lr * sqrt(dim)
    lr = cfg.residual_lr * radius / embedding.embedding_dim**0.5
    losses = _adam_fit(delta, loss_fn, cfg.residual_steps, lr, project)
    return delta.detach(), losses


def whitebox_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pool: pd.DataFrame,
    scored: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: WhiteboxConfig,
    eval_cfg: EvalConfig,
    max_tokens: int = 512,
    log: Callable[[str], None] = print,
    reference: Mapping | None = None,
) -> FamilyOutputs:
    """Per model: `none`, `soft_prompt` and, for a steered model, each `residual_<bound>` on
    the `scored` questions, the attacks trained on `n_train` questions of `pool`;
    `reference` (`reference.no_attack`) gives the `none` results instead of scoring them."""
    check_layer(model, cfg.layer, what="attack.whitebox.layer")
    check_pool(pool, cfg.n_train)
    train = deterministic_subset(pool, cfg.n_train, cfg.seed)
    prompts = gcg_prompts(tokenizer, train, eval_cfg.format)
    x_id = tokenizer(" x", add_special_tokens=False)["input_ids"][-1]
    device = model.get_input_embeddings().weight.device
    init = torch.full((cfg.soft_tokens,), x_id, device=device)  # GCG's "x x x ..." start
    out = FamilyOutputs()
    curves: dict = {}
    norms: dict = {}

    def score(name: str, setting: str, frame: pd.DataFrame) -> None:
        fig = add_setting(out, name, setting, frame, eval_cfg.bootstrap, eval_cfg.seed)
        log(f"whitebox {setting} {name}: acc {fig['acc']:.3f}")

    def plain(hook) -> pd.DataFrame:
        return evaluate_questions(
            model, tokenizer, scored, eval_cfg, max_tokens=max_tokens, gates=hook
        )

    with frozen([model, *hooks.values()]):
        if any(hook is not None for hook in hooks.values()):
            with torch.no_grad():  # what the residual attack restores: the unsteered model
                unsteered = torch.log_softmax(prompt_logits(model, prompts), dim=-1)
        for name, hook in hooks.items():
            curves[name] = {}
            with maybe_steer(model, hook):
                score(name, "none", unattacked(reference, name, partial(plain, hook)))
                soft, curves[name]["soft_prompt"] = soft_prompt_attack(model, prompts, init, cfg)
                fmt = eval_cfg.format
                frame = scored_with_soft_prompt(
                    model, tokenizer, scored, fmt, soft, max_tokens, gates=hook
                )
                score(name, "soft_prompt", frame)
                if hook is None:
                    continue
                norms[name] = typical_residual_norm(model, prompts, cfg.layer)
                for bound in cfg.bounds:
                    setting = residual_setting(bound)
                    delta, curves[name][setting] = residual_attack(
                        model, prompts, unsteered, bound * norms[name], cfg
                    )
                    with residual_added(model, cfg.layer, delta):
                        score(name, setting, plain(hook))
    out.metrics.update(n=len(scored), n_train=len(train))
    out.records["losses"] = curves
    out.records["residual_norm"] = norms
    return out


def recovery(metrics: dict) -> dict[str, float | None]:
    """(attacked - steered) / (baseline - steered) per setting, from the joined metrics'
    accuracies; None where baseline and steered agree (nothing to recover)."""
    base, steered = metrics["baseline"]["none"]["acc"], metrics["steered"]["none"]["acc"]
    gap = base - steered
    return {
        setting: (fig["acc"] - steered) / gap if abs(gap) > 1e-12 else None
        for setting, fig in metrics["steered"].items()
        if setting != "none"
    }
