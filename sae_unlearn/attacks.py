"""Adversarial evaluation: few-shot prompting, GCG suffix attacks and a gibberish check.

Every attack runs against whatever model the caller hands in; the caller decides whether
the steering hook is attached (`maybe_steer`), so the same code attacks the steered model
and the unsteered baseline.

GCG (Greedy Coordinate Gradient, Zou et al. 2023) follows nanoGCG's algorithm and
parameter names (`num_steps`, `search_width`, `topk`, `n_replace`, `buffer_size`,
`filter_ids`, `seed`, ...). It is written here rather than imported because nanoGCG pins
transformers <= 4.47.1 and breaks on the transformers 5 this project needs. It optimises
one suffix over several prompts (multi-prompt GCG: the mean loss over prompts).

Scoring shares work between sequences (`score_sequences`): the token prefix common to all
of them (the few-shot examples) runs once into a KV cache, and the rest are merged into
prefix trees packed into single rows with tree-shaped attention masks, so a question's
choices share its context and GCG candidates share the suffix tokens they did not change.
Each position's residual stream depends only on the tokens it attends to, and the steering
hook acts position by position, so this matches unshared scoring (up to float rounding)
with or without the hook. A gated clamp reads earlier positions: scoring tells it which
positions each packed token sees (its ancestors) and whether the cached prefix already
opened its gate (`gate_layout`); generation falls back to whole sequences.
"""

from __future__ import annotations

import copy
import inspect
import math
import random
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import DynamicCache
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.evaluation import (
    EvalConfig,
    build_requests,
    continuation_logprobs,
    encode_pair,
    format_prompt,
    output_logits,
    results_frame,
    subject_description,
    target_continuation,
)
from sae_unlearn.steering import (
    ClampHook,
    GateLayout,
    gate_layout,
    gate_opened,
    needs_whole_sequences,
    steer,
)

# nanoGCG's characters for random buffer initialisations.
INIT_CHARS = list(".,!?;:()[]{}@#$%&*wxyz")


def maybe_steer(model: nn.Module, hook: ClampHook | None):
    """`steer(model, hook)`, or nothing for the unsteered baseline."""
    return steer(model, hook) if hook is not None else nullcontext()


# --- shared-prefix scoring ----------------------------------------------------------------


def _base(model: nn.Module) -> nn.Module:
    return getattr(model, "model", model)


def _cache_key(base: nn.Module) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept both."""
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _forward(base: nn.Module, cache: DynamicCache | None = None, **inputs) -> torch.Tensor:
    out = base(**inputs, **{_cache_key(base): cache}, use_cache=cache is not None)
    return out.last_hidden_state


def _prefix_cache(base: nn.Module, ids: Sequence[int], device) -> DynamicCache | None:
    """KV cache of a prefix. Its layers are all full (no sliding-window truncation) so the
    masks built here by position can address every cached key."""
    if not ids:
        return None
    cache = DynamicCache()
    _forward(base, cache, input_ids=torch.tensor([list(ids)], device=device))
    return cache


def _reusable(cache: DynamicCache) -> DynamicCache:
    """A shallow copy of `cache`: layers grow by concatenation into new tensors, so the
    copy never writes to the original and one prefix cache serves every forward."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    return out


def _attention_mask(
    allowed: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, config, dtype
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Additive 4D masks from a boolean `[B, Q, K]` pattern.

    A custom mask skips the model's own mask building, so the sliding window of local
    attention layers is applied here, by position.
    """
    zero = torch.zeros((), dtype=dtype)
    neg = torch.tensor(torch.finfo(dtype).min, dtype=dtype)

    def additive(keep: torch.Tensor) -> torch.Tensor:
        return torch.where(keep, zero, neg)[:, None]

    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", True) is False:
        window = None
    if window is None:
        return additive(allowed)
    # Every query keeps its own key (distance 0), so no row is ever fully masked.
    sliding = allowed & ((q_pos[:, :, None] - k_pos[:, None, :]) < window)
    kinds = set(getattr(config, "layer_types", None) or [])
    if kinds == {"sliding_attention", "full_attention"}:
        return {"full_attention": additive(allowed), "sliding_attention": additive(sliding)}
    if kinds == {"full_attention"}:
        return additive(allowed)
    return additive(sliding)


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


class _Trie:
    """Token sequences merged into a prefix tree: one node per distinct prefix."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.parents: list[int] = []
        self.depths: list[int] = []
        self.children: dict[tuple[int, int], int] = {}

    def new_nodes(self, seq: Sequence[int]) -> int:
        node = -1
        for i, tok in enumerate(seq):
            node = self.children.get((node, tok), -2)
            if node == -2:
                return len(seq) - i
        return 0

    def add(self, seq: Sequence[int]) -> list[int]:
        path, node = [], -1
        for depth, tok in enumerate(seq):
            child = self.children.get((node, tok))
            if child is None:
                child = len(self.tokens)
                self.children[(node, tok)] = child
                self.tokens.append(tok)
                self.parents.append(node)
                self.depths.append(depth)
            path.append(child)
            node = child
        return path

    def ancestry(self) -> np.ndarray:
        """`[n, n]`: whether node k is node q or one of its ancestors."""
        n = len(self.tokens)
        anc = np.zeros((n, n), dtype=bool)
        for q, parent in enumerate(self.parents):  # parents come before their children
            if parent >= 0:
                anc[q] = anc[parent]
            anc[q, q] = True
        return anc


def score_sequences(
    model: nn.Module,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    max_tokens: int = 512,
    grad: bool = False,
    progress: bool = False,
) -> list[tuple[float, bool]]:
    """`evaluation.continuation_logprobs` (log p(continuation | context), greedy match) for
    `(context, continuation)` token pairs, computing every shared prefix once.

    The prefix common to all sequences (e.g. the few-shot examples) runs once into a KV
    cache. The rest are sorted and merged into prefix trees of up to `max_tokens` nodes,
    each packed into one row with an attention mask that lets a token see only its own
    ancestors and positions equal to its depth: a question's choices share its context,
    GCG candidates share the suffix tokens before the one they change.
    """
    if not sequences:
        return []
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        # Packed rows need an arbitrary additive mask, which only these kernels take.
        pad = getattr(model.config, "pad_token_id", None) or 0
        return continuation_logprobs(model, sequences, pad, 16, progress, grad)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    base = _base(model)
    full = [list(ctx) + list(cont) for ctx, cont in sequences]
    # At least the last context token of each sequence stays out of the cached prefix:
    # its hidden state predicts the first continuation token.
    shared = min(_common_prefix(full), min(len(ctx) for ctx, _ in sequences) - 1)
    order = sorted(range(len(full)), key=lambda i: full[i][shared:])
    rows: list[tuple[_Trie, list[tuple[int, list[int]]]]] = []
    trie, members = _Trie(), []
    for i in order:
        rest = full[i][shared:]
        if members and len(trie.tokens) + trie.new_nodes(rest) > max_tokens:
            rows.append((trie, members))
            trie, members = _Trie(), []
        members.append((i, trie.add(rest)))
    rows.append((trie, members))

    results: list[tuple[float, bool]] = [(0.0, False)] * len(sequences)
    with torch.enable_grad() if grad else torch.no_grad():
        # A gated clamp reads earlier positions: the prefix tells whether its gate is
        # already open, and each packed row tells it which positions see which.
        with gate_layout(model, GateLayout()) as gated:
            root = _prefix_cache(base, full[0][:shared], device)
        carry = gate_opened(gated)
        for trie, members in tqdm(rows, desc="score", disable=not progress):
            n = len(trie.tokens)
            ancestry = torch.from_numpy(trie.ancestry())
            positions = torch.tensor(trie.depths) + shared
            allowed = ancestry
            allowed = torch.cat([torch.ones((n, shared), dtype=torch.bool), allowed], dim=1)
            k_pos = torch.cat([torch.arange(shared), positions])
            mask = _attention_mask(allowed[None], positions[None], k_pos[None], model.config, dtype)
            mask = {k: v.to(device) for k, v in mask.items()} if isinstance(mask, dict) else mask
            with gate_layout(model, GateLayout(ancestry, positions, carry)):
                hidden = _forward(
                    base,
                    _reusable(root) if root is not None else None,
                    input_ids=torch.tensor([trie.tokens], device=device),
                    position_ids=positions[None].to(device),
                    attention_mask=mask.to(device) if torch.is_tensor(mask) else mask,
                )[0]
            cols, targets, owners = [], [], []
            for j, (i, path) in enumerate(members):
                n_ctx = len(sequences[i][0]) - shared
                for t, tok in enumerate(sequences[i][1]):
                    cols.append(path[n_ctx + t - 1])
                    targets.append(tok)
                    owners.append(j)
            # One unembedding per distinct node: a question's choices are all predicted
            # from its last context token, and the 262k-way unembedding dominates here.
            nodes, where = torch.unique(torch.tensor(cols), return_inverse=True)
            node_logits = output_logits(model, hidden[nodes.to(device)]).float()
            node_logprobs = torch.log_softmax(node_logits, dim=-1)
            where = where.to(node_logits.device)
            target = torch.tensor(targets, device=node_logits.device)
            picked = node_logprobs[where, target]
            greedy = (node_logits.argmax(-1)[where] == target).tolist()
            owner = torch.tensor(owners, device=picked.device)
            sums = torch.zeros(len(members), device=picked.device).index_add(0, owner, picked)
            all_greedy = [True] * len(members)
            for j, ok in zip(owners, greedy, strict=True):
                all_greedy[j] = all_greedy[j] and ok
            for j, (i, _) in enumerate(members):
                results[i] = (sums[j] if grad else float(sums[j]), all_greedy[j])
    return results


def evaluate_shared(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    cfg: EvalConfig,
    fewshot: pd.DataFrame | None = None,
    suffix: str = "",
    max_tokens: int = 512,
    progress: bool = False,
) -> pd.DataFrame:
    """`evaluation.evaluate_questions` (same requests, tokenisation and columns), scored
    with `score_sequences`."""
    requests = build_requests(questions, cfg.format, fewshot=fewshot, suffix=suffix)
    flat = [encode_pair(tokenizer, r.context, c) for r in requests for c in r.continuations]
    scores = score_sequences(model, flat, max_tokens=max_tokens, progress=progress)
    loglik, k = [], 0
    for r in requests:
        loglik.append([score for score, _ in scores[k : k + len(r.continuations)]])
        k += len(r.continuations)
    return results_frame(questions, requests, loglik)


# --- few-shot --------------------------------------------------------------------------------


def draw_shots(pool: pd.DataFrame, k: int, seed: int) -> pd.DataFrame | None:
    """The first `k` of one seeded permutation of `pool`, so shot sets are nested across k
    (the 16-shot prompt extends the 4-shot one) and differences between k are not noise
    from redrawing. `None` for k = 0."""
    if k < 0:
        raise ValueError(f"attack.fewshot entries must be >= 0, got {k}")
    if k == 0:
        return None
    if k > len(pool):
        raise ValueError(f"{k}-shot needs {k} retain questions but only {len(pool)} exist")
    order = np.random.default_rng(seed).permutation(len(pool))
    return pool.iloc[order[:k]].reset_index(drop=True)


def deterministic_subset(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """`n` rows drawn with `seed`, kept in their original order (all rows for None)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


# --- GCG ----------------------------------------------------------------------------------


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
                raise ValueError(f"attack.gcg.{name}={getattr(self, name)} must be positive")
        if self.buffer_size < 0:
            raise ValueError("attack.gcg.buffer_size must be >= 0")
        if not self.optim_str_init.strip():
            raise ValueError("attack.gcg.optim_str_init must not be blank")


@dataclass(frozen=True)
class GCGPrompt:
    """One question as GCG sees it: [before][suffix][after] -> target, all token ids.

    The optimised ids decode to " " + suffix: the space that `format_prompt` puts
    between question and suffix belongs to the first suffix token, as it does when the
    evaluation prompt is tokenised whole.
    """

    before: list[int]
    after: list[int]
    target: list[int]
    text_before: str
    text_after: str
    continuation: str


@dataclass
class GCGResult:
    best_loss: float
    best_string: str  # the suffix, as passed to `format_prompt(..., suffix=)`
    best_ids: list[int]
    init_loss: float
    losses: list[float] = field(default_factory=list)  # best candidate loss of each step
    strings: list[str] = field(default_factory=list)  # current suffix after each step
    n_candidates: list[int] = field(default_factory=list)  # candidates left after filtering


def _split_prompt(question: str, choices: Sequence[str], fmt: str) -> tuple[str, str]:
    """Text before and after the suffix in `format_prompt(..., suffix=...)`."""
    marker = "\x00SUFFIX\x00"
    text = format_prompt(question, choices, fmt, suffix=marker)
    before, after = text.split(marker)
    # `format_prompt` writes "{body} {suffix}": the space goes with the suffix tokens.
    if not before.endswith(" "):  # pragma: no cover - guarded by format_prompt's contract
        raise ValueError("format_prompt no longer separates the suffix with a space")
    return before[:-1], after


def gcg_prompts(
    tokenizer: PreTrainedTokenizerBase, questions: pd.DataFrame, fmt: str
) -> list[GCGPrompt]:
    """The prompts GCG optimises over, targeting each question's correct answer."""
    prompts = []
    for row in questions.itertuples(index=False):
        choices = list(row.choices)
        prefix = subject_description(row.subject) if fmt == "letter" else ""
        before, after = _split_prompt(row.question, choices, fmt)
        before = prefix + before
        continuation = target_continuation(choices, int(row.answer), fmt)
        before_ids, _ = encode_pair(tokenizer, before, "")
        ctx, cont = encode_pair(tokenizer, after, continuation)
        bos = 1 if tokenizer.bos_token_id is not None else 0
        prompts.append(GCGPrompt(before_ids, ctx[bos:], cont, before, after, continuation))
    return prompts


def allowed_token_mask(tokenizer: PreTrainedTokenizerBase, vocab_size: int, allow_non_ascii: bool):
    """Tokens the suffix may use: no special or added tokens; by default only tokens that
    decode to printable ASCII (nanoGCG's rule), which also keeps newlines out."""
    ok = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    for i, text in enumerate(texts):
        if text and (allow_non_ascii or (text.isascii() and text.isprintable())):
            ok[i] = True
    banned = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    for i in banned:
        if 0 <= i < vocab_size:
            ok[i] = False
    return ok


def _suffix_text(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str | None:
    """The suffix string for optimised ids (their text less the separating space), or
    None when they decode to nothing printable."""
    text = tokenizer.decode(list(ids))
    suffix = text[1:] if text.startswith(" ") else text
    return suffix if suffix.strip() else None


def _round_trips(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[GCGPrompt], ids: Sequence[int]
) -> bool:
    """Whether each evaluation prompt with this suffix tokenises to exactly the ids GCG
    scored (nanoGCG's `filter_ids`, checked in context so merges across the suffix's
    boundaries are caught too)."""
    suffix = _suffix_text(tokenizer, ids)
    if suffix is None:
        return False
    for p in prompts:
        ctx, cont = encode_pair(
            tokenizer, p.text_before + " " + suffix + p.text_after, p.continuation
        )
        if ctx != p.before + list(ids) + p.after or cont != p.target:
            return False
    return True


def _embedding_scale(embedding: nn.Module) -> float:
    """Gemma multiplies token embeddings by sqrt(d_model) inside its embedding module."""
    scale = getattr(embedding, "embed_scale", 1.0)
    return float(scale) if not torch.is_tensor(scale) else float(scale.item())


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
    scale = _embedding_scale(embedding)
    base = _base(model)
    with torch.enable_grad():
        suffix = embedding(ids.to(device)[None]).detach().requires_grad_(True)
        width = max(len(p.before) + ids.numel() + len(p.after) + len(p.target) for p in prompts)
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        rows, cols, targets, owners = [], [], [], []
        pieces = []
        for j, p in enumerate(prompts):
            before = embedding(torch.tensor([p.before], device=device))[0].detach()
            rest = embedding(torch.tensor([p.after + p.target], device=device))[0].detach()
            row = torch.cat([before, suffix[0], rest], dim=0)
            pieces.append(torch.nn.functional.pad(row, (0, 0, 0, width - len(row))))
            mask[j, : len(row)] = 1
            n_ctx = len(p.before) + ids.numel() + len(p.after)
            for t, tok in enumerate(p.target):
                rows.append(j)
                cols.append(n_ctx + t - 1)
                targets.append(tok)
                owners.append(j)
        embeds = torch.stack(pieces)
        hidden = _forward(base, None, inputs_embeds=embeds, attention_mask=mask)
        logits = output_logits(model, hidden[rows, cols]).float()
        nll = torch.nn.functional.cross_entropy(
            logits, torch.tensor(targets, device=device), reduction="none"
        )
        owner = torch.tensor(owners, device=device)
        per_prompt = torch.zeros(len(prompts), device=device).index_add(0, owner, nll)
        counts = torch.tensor([len(p.target) for p in prompts], device=device, dtype=nll.dtype)
        loss = (per_prompt / counts).mean()
        (grad_embeds,) = torch.autograd.grad(loss, suffix)
    weight = embedding.weight.detach()
    grad = (grad_embeds[0].to(weight.dtype) * scale) @ weight.T
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
        raise ValueError("GCG needs at least one prompt")
    vocab = model.get_input_embeddings().num_embeddings
    if allowed is None:
        allowed = allowed_token_mask(tokenizer, vocab, cfg.allow_non_ascii)
    generator = torch.Generator().manual_seed(cfg.seed if cfg.seed is not None else 0)
    rng = random.Random(cfg.seed)

    init = tokenizer(" " + cfg.optim_str_init.strip(), add_special_tokens=False)["input_ids"]
    if cfg.filter_ids and not _round_trips(tokenizer, prompts, init):
        raise ValueError(
            f"attack.gcg.optim_str_init={cfg.optim_str_init!r} does not tokenise the same way "
            "inside the prompts; choose another initial string or set filter_ids: false"
        )
    inits = [init]
    for _ in range(50 * max(0, cfg.buffer_size - 1)):
        if len(inits) >= cfg.buffer_size:
            break
        text = " " + " ".join(rng.choice(INIT_CHARS) for _ in init)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == len(init) and (not cfg.filter_ids or _round_trips(tokenizer, prompts, ids)):
            inits.append(ids)
    init_t = torch.tensor(inits)
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
                i for i, c in enumerate(candidates.tolist()) if _round_trips(tokenizer, prompts, c)
            ]
            candidates = candidates[keep]
        result.n_candidates.append(len(candidates))
        if len(candidates) == 0:
            # nanoGCG raises here; a skipped step keeps a long pipeline run alive.
            result.losses.append(buffer.best[0])
            result.strings.append(_suffix_text(tokenizer, current.tolist()) or "")
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
        result.strings.append(_suffix_text(tokenizer, current.tolist()) or "")
    result.best_string = _suffix_text(tokenizer, result.best_ids) or ""
    return result


# --- gibberish check ------------------------------------------------------------------------


def prompt_texts(questions: pd.DataFrame, fmt: str, suffix: str = "") -> list[str]:
    """The zero-shot evaluation prompts (up to "Answer:") of `questions`."""
    out = []
    for row in questions.itertuples(index=False):
        prefix = subject_description(row.subject) if fmt == "letter" else ""
        out.append(prefix + format_prompt(row.question, list(row.choices), fmt, suffix))
    return out


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    ids, _ = encode_pair(tokenizer, text, "")
    return ids


@torch.no_grad()
def _greedy_whole(model: nn.Module, ids: list[int], max_new_tokens: int, eos: int | None):
    """Greedy decoding that reruns the whole sequence every step (no KV cache, no padding),
    for hooks that read earlier positions."""
    device = next(model.parameters()).device
    base = _base(model)
    generated: list[int] = []
    for _ in range(max_new_tokens):
        hidden = _forward(base, None, input_ids=torch.tensor([ids + generated], device=device))
        tok = int(output_logits(model, hidden[:, -1]).argmax(-1)[0])
        generated.append(tok)
        if tok == eos:
            break
    return generated


@torch.no_grad()
def greedy_continuations(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int = 20,
    batch_size: int = 16,
) -> list[list[int]]:
    """Greedy continuations (token ids, stopping after EOS) of each prompt, batched with
    left padding and explicit positions."""
    device = next(model.parameters()).device
    base = _base(model)
    eos = tokenizer.eos_token_id
    if needs_whole_sequences(model):
        return [
            _greedy_whole(model, _prompt_ids(tokenizer, t), max_new_tokens, eos) for t in prompts
        ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[list[int]] = []
    for lo in range(0, len(prompts), batch_size):
        encoded = [_prompt_ids(tokenizer, t) for t in prompts[lo : lo + batch_size]]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for j, e in enumerate(encoded):
            ids[j, width - len(e) :] = torch.tensor(e)
            mask[j, width - len(e) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        generated = [[] for _ in encoded]
        done = [False] * len(encoded)
        step_ids, step_pos = ids, positions
        for _ in range(max_new_tokens):
            hidden = _forward(
                base, cache, input_ids=step_ids, attention_mask=mask, position_ids=step_pos
            )
            nxt = output_logits(model, hidden[:, -1]).argmax(-1)
            for j, tok in enumerate(nxt.tolist()):
                if not done[j]:
                    generated[j].append(tok)
                    done[j] = tok == eos
            if all(done):
                break
            step_ids = nxt[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out.extend(generated)
    return out


def continuation_perplexities(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> list[float]:
    """exp(mean NLL) of each continuation given its prompt, under `model` as it is called."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = [
        (_prompt_ids(tokenizer, p), list(c)) for p, c in zip(prompts, continuations, strict=True)
    ]
    scores = continuation_logprobs(model, seqs, pad, batch_size)
    return [
        math.exp(-s / len(c)) if len(c) else float("nan")
        for (s, _), (_, c) in zip(scores, seqs, strict=True)
    ]


def fluency_summary(perplexities: Sequence[float], threshold: float) -> dict:
    ppl = np.asarray(perplexities, dtype=float)
    ppl = ppl[~np.isnan(ppl)]
    if len(ppl) == 0:
        return {"ppl_median": float("nan"), "ppl_geomean": float("nan"), "fluent_share": 0.0}
    return {
        "ppl_median": float(np.median(ppl)),
        "ppl_geomean": float(np.exp(np.log(ppl).mean())),
        "fluent_share": float((ppl < threshold).mean()),
    }


__all__ = [
    "GCGConfig",
    "GCGPrompt",
    "GCGResult",
    "allowed_token_mask",
    "candidate_losses",
    "continuation_perplexities",
    "deterministic_subset",
    "draw_shots",
    "evaluate_shared",
    "fluency_summary",
    "gcg_prompts",
    "greedy_continuations",
    "maybe_steer",
    "prompt_texts",
    "run_gcg",
    "score_sequences",
    "token_gradient",
]
