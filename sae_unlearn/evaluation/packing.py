"""Building blocks of packed scoring: a shared prefix in a KV cache, the remaining tokens
merged into prefix trees, and tree-shaped attention masks.

Each position's residual stream depends only on the tokens it attends to, so a token placed
in a packed row that sees exactly its ancestors computes what it would in its own sequence.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import DynamicCache

from sae_unlearn.evaluation.forward import final_hidden


def prefix_cache(base: nn.Module, ids: Sequence[int], device) -> DynamicCache | None:
    """KV cache of a prefix. Its layers are all full (no sliding-window truncation) so the
    masks built here by position can address every cached key."""
    if not ids:
        return None
    cache = DynamicCache()
    final_hidden(base, cache, input_ids=torch.tensor([list(ids)], device=device))
    return cache


def reusable(cache: DynamicCache) -> DynamicCache:
    """A shallow copy of `cache`: layers grow by concatenation into new tensors, so the
    copy never writes to the original and one prefix cache serves every forward."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    return out


def attention_mask(
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


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all `seqs` share."""
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


class Trie:
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


PackedRow = tuple[Trie, list[tuple[int, list[int]]]]


def pack_rows(full: Sequence[Sequence[int]], shared: int, max_tokens: int) -> list[PackedRow]:
    """The sequences after their first `shared` tokens, sorted and merged into prefix trees
    of up to `max_tokens` nodes; each row lists (sequence index, node path) of its members."""
    order = sorted(range(len(full)), key=lambda i: full[i][shared:])
    rows: list[PackedRow] = []
    trie, members = Trie(), []
    for i in order:
        rest = full[i][shared:]
        if members and len(trie.tokens) + trie.new_nodes(rest) > max_tokens:
            rows.append((trie, members))
            trie, members = Trie(), []
        members.append((i, trie.add(rest)))
    rows.append((trie, members))
    return rows


def packed_inputs(
    trie: Trie, shared: int, config, dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | dict[str, torch.Tensor]]:
    """A packed row's ancestry `[n, n]`, positions `[n]` and attention mask: each token
    sees the cached prefix, itself and its ancestors."""
    ancestry = torch.from_numpy(trie.ancestry())
    positions = torch.tensor(trie.depths) + shared
    return ancestry, positions, tree_mask(ancestry, positions, shared, config, dtype)


def tree_mask(
    ancestry: torch.Tensor, positions: torch.Tensor, shared: int, config, dtype
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The attention mask of packed tokens with this ancestry `[n, n]` and these positions
    `[n]` after a cached prefix of `shared` tokens (any subset of a row's nodes that holds
    each node's ancestors is itself a packed row)."""
    n = len(positions)
    allowed = torch.cat([torch.ones((n, shared), dtype=torch.bool), ancestry], dim=1)
    k_pos = torch.cat([torch.arange(shared), positions])
    return attention_mask(allowed[None], positions[None], k_pos[None], config, dtype)
