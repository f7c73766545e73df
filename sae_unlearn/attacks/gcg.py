"""GCG suffix attack (Greedy Coordinate Gradient, Zou et al. 2023).

Follows nanoGCG's algorithm and parameter names (`num_steps`, `search_width`, `topk`,
`n_replace`, `buffer_size`, `filter_ids`, `seed`, ...). It is written here rather than
imported because nanoGCG pins transformers <= 4.47.1 and breaks on the transformers 5 this
project needs. It optimises one suffix over several prompts (multi-prompt GCG: the mean
loss over prompts), against whatever model it is given, steered or not.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.gcg_tokens import GCGPrompt, allowed_token_mask, round_trips, suffix_text
from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.forward import decoder, final_hidden, output_logits
from sae_unlearn.evaluation.scoring import (
    Targets,
    continuation_logprobs,
    score_sequences,
    sequence_logprobs,
)

# nanoGCG's characters for random buffer initialisations.
INIT_CHARS = list(".,!?;:()[]{}@#$%&*wxyz")


@dataclass(frozen=True)
class GCGConfig:
    """nanoGCG's parameters (same names and defaults where they apply)."""

    num_steps: int = 250
    optim_str_init: str = "x x x x x x x x x x x x x x x x x x x x"
    search_width: int = 512
    max_tokens: int = 512  # tokens per packed forward (replaces nanoGCG's batch_size)
    topk: int = 256
    n_replace: int = 1
    buffer_size: int = 0
    allow_non_ascii: bool = False
    filter_ids: bool = True
    use_prefix_cache: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_steps", "search_width", "topk", "n_replace"):
            if getattr(self, name) < (0 if name == "num_steps" else 1):
                raise UserError(f"attack.gcg.{name}={getattr(self, name)} must be positive")
        if self.buffer_size < 0:
            raise UserError("attack.gcg.buffer_size must be >= 0")
        if not self.optim_str_init.strip():
            raise UserError("attack.gcg.optim_str_init must not be blank")


@dataclass
class GCGResult:
    best_loss: float
    best_string: str  # the suffix, as passed to `format_prompt(..., suffix=)`
    best_ids: list[int]
    init_loss: float
    losses: list[float] = field(default_factory=list)  # best candidate loss of each step
    strings: list[str] = field(default_factory=list)  # current suffix after each step
    n_candidates: list[int] = field(default_factory=list)  # candidates left after filtering


def embedding_scale(embedding: nn.Module) -> float:
    """Gemma multiplies token embeddings by sqrt(d_model) inside its embedding module."""
    scale = getattr(embedding, "embed_scale", 1.0)
    return float(scale) if not torch.is_tensor(scale) else float(scale.item())


def target_logits(
    model: nn.Module, prompts: Sequence[GCGPrompt], suffix: torch.Tensor | None
) -> tuple[torch.Tensor, Targets]:
    """Float logits `[n_targets, vocab]` at the positions that predict each prompt's target
    tokens, with `suffix` embeddings `[n, d]` (the embedding module's output, Gemma's scale
    included; None: no suffix) between each prompt's `before` and `after`; differentiable
    in `suffix` and in anything a hook on the model adds."""
    device = next(model.parameters()).device
    embedding = model.get_input_embeddings()
    n_suffix = 0 if suffix is None else len(suffix)
    width = max(len(p.before) + n_suffix + len(p.after) + len(p.target) for p in prompts)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    targets = Targets()
    pieces = []
    for j, p in enumerate(prompts):
        before = embedding(torch.tensor([p.before], device=device))[0].detach()
        rest = embedding(torch.tensor([p.after + p.target], device=device))[0].detach()
        parts = [before, rest] if suffix is None else [before, suffix, rest]
        row = torch.cat(parts, dim=0)
        pieces.append(torch.nn.functional.pad(row, (0, 0, 0, width - len(row))))
        mask[j, : len(row)] = 1
        targets.add(j, len(p.before) + n_suffix + len(p.after), p.target, row=j)
    hidden = final_hidden(
        decoder(model), None, inputs_embeds=torch.stack(pieces), attention_mask=mask
    )
    return output_logits(model, hidden[targets.rows, targets.cols]).float(), targets


def target_loss(
    model: nn.Module, prompts: Sequence[GCGPrompt], suffix: torch.Tensor | None
) -> torch.Tensor:
    """The mean over prompts of the mean target-token cross-entropy (`target_logits`)."""
    logits, targets = target_logits(model, prompts, suffix)
    logprob, _ = sequence_logprobs(logits, targets, len(prompts))
    counts = torch.tensor([len(p.target) for p in prompts], device=logits.device)
    return (-logprob / counts.to(logprob.dtype)).mean()


def token_gradient(
    model: nn.Module, prompts: Sequence[GCGPrompt], ids: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Gradient of the mean GCG loss w.r.t. the one-hot suffix tokens, `[n_optim, vocab]`.

    With embeddings `e = onehot @ (W * scale)`, d loss / d onehot = (d loss / d e) @
    (W * scale)^T; the suffix embeddings are the leaf, which skips a vocab-sized matmul
    per prompt. Any steering hook attached to the model sits on the path (no `no_grad`).
    """
    device = next(model.parameters()).device
    embedding = model.get_input_embeddings()
    scale = embedding_scale(embedding)
    with torch.enable_grad():
        suffix = embedding(ids.to(device)[None])[0].detach().requires_grad_(True)
        loss = target_loss(model, prompts, suffix)
        (grad_embeds,) = torch.autograd.grad(loss, suffix)
    weight = embedding.weight.detach()
    grad = (grad_embeds.to(weight.dtype) * scale) @ weight.T
    return grad.float(), float(loss.detach())


def candidate_losses(
    model: nn.Module,
    prompts: Sequence[GCGPrompt],
    candidates: torch.Tensor,
    max_tokens: int = 512,
    use_prefix_cache: bool = True,
) -> torch.Tensor:
    """Mean over prompts of the mean target-token cross-entropy, per candidate suffix."""
    cand = candidates.tolist()
    seqs = [(p.before + c + p.after, p.target) for p in prompts for c in cand]
    if use_prefix_cache:
        scores = score_sequences(model, seqs, max_tokens=max_tokens)
    else:
        scores = continuation_logprobs(model, seqs, 0, batch_size=max(1, len(cand)))
    nll = -torch.tensor([s for s, _ in scores], dtype=torch.float64).view(len(prompts), -1)
    lengths = torch.tensor([len(p.target) for p in prompts], dtype=torch.float64)[:, None]
    return (nll / lengths).mean(0).float()


def _sample_candidates(
    ids: torch.Tensor,
    grad: torch.Tensor,
    cfg: GCGConfig,
    allowed: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """nanoGCG's sampling: each candidate replaces `n_replace` random positions with one of
    that position's `topk` tokens of most negative gradient."""
    n_optim = ids.numel()
    grad = grad.clone()
    grad[:, ~allowed.to(grad.device)] = float("inf")
    top = (-grad).topk(cfg.topk, dim=1).indices.cpu()
    positions = torch.rand((cfg.search_width, n_optim), generator=generator).argsort(dim=1)
    positions = positions[:, : cfg.n_replace]
    choice = torch.randint(0, cfg.topk, (cfg.search_width, cfg.n_replace), generator=generator)
    values = top[positions, choice]
    return ids.cpu().repeat(cfg.search_width, 1).scatter(1, positions, values)


class _Buffer:
    """nanoGCG's attack buffer: size 0 keeps only the latest step's best candidate."""

    def __init__(self, size: int):
        self.size = size
        self.items: list[tuple[float, torch.Tensor]] = []

    def add(self, loss: float, ids: torch.Tensor) -> None:
        if self.size == 0:
            self.items = [(loss, ids)]
            return
        if len(self.items) < self.size:
            self.items.append((loss, ids))
        else:
            self.items[-1] = (loss, ids)
        self.items.sort(key=lambda x: x[0])

    @property
    def best(self) -> tuple[float, torch.Tensor]:
        return self.items[0]

    @property
    def worst_loss(self) -> float:
        return self.items[-1][0]


def _initial_suffixes(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[GCGPrompt], cfg: GCGConfig
) -> torch.Tensor:
    """`optim_str_init` and, to fill a larger buffer, random strings of as many tokens."""
    rng = random.Random(cfg.seed)
    init = tokenizer(" " + cfg.optim_str_init.strip(), add_special_tokens=False)["input_ids"]
    if cfg.filter_ids and not round_trips(tokenizer, prompts, init):
        raise UserError(
            f"attack.gcg.optim_str_init={cfg.optim_str_init!r} does not tokenise the same way "
            "inside the prompts; choose another initial string or set filter_ids: false"
        )
    inits = [init]
    for _ in range(50 * max(0, cfg.buffer_size - 1)):
        if len(inits) >= cfg.buffer_size:
            break
        text = " " + " ".join(rng.choice(INIT_CHARS) for _ in init)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == len(init) and (not cfg.filter_ids or round_trips(tokenizer, prompts, ids)):
            inits.append(ids)
    return torch.tensor(inits)


def run_gcg(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[GCGPrompt],
    cfg: GCGConfig,
    allowed: torch.Tensor | None = None,
    progress: bool = False,
) -> GCGResult:
    """Optimise one suffix so the model predicts each prompt's target (multi-prompt GCG).

    Deterministic for a given `cfg.seed` (its own generators; the global RNG is untouched).
    Returns the suffix with the lowest loss seen, as nanoGCG does.
    """
    if not prompts:
        raise UserError("GCG needs at least one prompt")
    vocab = model.get_input_embeddings().num_embeddings
    if allowed is None:
        allowed = allowed_token_mask(tokenizer, vocab, cfg.allow_non_ascii)
    generator = torch.Generator().manual_seed(cfg.seed if cfg.seed is not None else 0)
    init_t = _initial_suffixes(tokenizer, prompts, cfg)
    init_losses = candidate_losses(model, prompts, init_t, cfg.max_tokens, cfg.use_prefix_cache)
    buffer = _Buffer(cfg.buffer_size)
    for loss, ids in zip(init_losses.tolist(), init_t, strict=True):
        buffer.add(loss, ids)
    best_loss, best_ids = min(zip(init_losses.tolist(), init_t, strict=True), key=lambda x: x[0])
    result = GCGResult(
        best_loss=best_loss,
        best_string="",
        best_ids=best_ids.tolist(),
        init_loss=float(init_losses[0]),
    )
    current = buffer.best[1]
    for _ in tqdm(range(cfg.num_steps), desc="GCG", disable=not progress):
        grad, _ = token_gradient(model, prompts, current)
        candidates = _sample_candidates(current, grad, cfg, allowed, generator)
        if cfg.filter_ids:
            keep = [
                i for i, c in enumerate(candidates.tolist()) if round_trips(tokenizer, prompts, c)
            ]
            candidates = candidates[keep]
        result.n_candidates.append(len(candidates))
        if len(candidates) == 0:
            # nanoGCG raises here; a skipped step keeps a long pipeline run alive.
            result.losses.append(buffer.best[0])
            result.strings.append(suffix_text(tokenizer, current.tolist()) or "")
            continue
        losses = candidate_losses(model, prompts, candidates, cfg.max_tokens, cfg.use_prefix_cache)
        step_loss = float(losses.min())
        step_ids = candidates[int(losses.argmin())]
        if buffer.size == 0 or step_loss < buffer.worst_loss:
            buffer.add(step_loss, step_ids)
        if step_loss < result.best_loss:
            result.best_loss, result.best_ids = step_loss, step_ids.tolist()
        current = buffer.best[1]
        result.losses.append(step_loss)
        result.strings.append(suffix_text(tokenizer, current.tolist()) or "")
    result.best_string = suffix_text(tokenizer, result.best_ids) or ""
    return result
