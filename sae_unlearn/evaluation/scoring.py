"""The scoring engine: log p(continuation | context) for token pairs, in one of two ways.

- Dense (`continuation_logprobs`): padded batches of whole sequences, sorted by length.
  Evaluation, perplexities and unshared GCG losses use it.
- Packed (`score_sequences`): the prefix common to all sequences (few-shot examples) runs
  once into a KV cache, and the rest are merged into prefix trees packed into single rows
  with tree-shaped attention masks, so a question's choices share its context and GCG
  candidates share the suffix tokens they did not change. This matches dense scoring up to
  float rounding, with or without the steering hook. A gated clamp reads earlier positions:
  it is told which positions each packed token sees (its ancestors) and what the cached
  prefix left its gate (`gate_layout`, `gate_carry`).

Packed scoring of a steered model can also take a baseline's scores wherever the hook edits
nothing a sequence reads (`Unsteered`): such rows stop after the hook's block.

Both (and GCG's token gradient) turn logits into log-probabilities with `sequence_logprobs`.
Logits are computed only at positions that predict continuation tokens. Both can record
where a hook's gate was open in each sequence (`recorder`, evaluation.gates).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import DynamicCache

from sae_unlearn.errors import UserError
from sae_unlearn.evaluation.forward import (
    decoder,
    final_hidden,
    final_hidden_after_block,
    hidden_after_block,
    output_logits,
)
from sae_unlearn.evaluation.gates import GateRecorder
from sae_unlearn.evaluation.packing import (
    common_prefix,
    pack_rows,
    packed_inputs,
    prefix_cache,
    reusable,
    tree_mask,
)
from sae_unlearn.evaluation.residuals import RowResiduals
from sae_unlearn.models import capture_residuals, decoder_layers
from sae_unlearn.steering import GateLayout, attached_hooks, gate_carry, gate_layout

# (sum of log-probs, whether every token is the greedy one; None where a reused value was taken)
Score = tuple[float, bool | None]


@dataclass
class Targets:
    """Continuation tokens to score: the hidden state that predicts each (`rows`, `cols`),
    the token itself, and the sequence it belongs to (`owners`)."""

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)

    def add(
        self,
        owner: int,
        n_context: int,
        continuation: Sequence[int],
        row: int = 0,
        nodes: Sequence[int] | None = None,
    ) -> None:
        """The token before each continuation token predicts it; `nodes` maps a packed
        sequence's positions to its columns in the packed row."""
        for t, tok in enumerate(continuation):
            pos = n_context + t - 1
            self.rows.append(row)
            self.cols.append(pos if nodes is None else nodes[pos])
            self.tokens.append(tok)
            self.owners.append(owner)


def sequence_logprobs(
    logits: torch.Tensor, targets: Targets, n_sequences: int, where: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence, the sum of its tokens' log-probabilities `[n]` and whether each token
    is the argmax `[n]`. `logits` are float `[n_rows, vocab]`; `where[i]` is the row that
    predicts target i (default: row i)."""
    device = logits.device
    token = torch.tensor(targets.tokens, dtype=torch.long, device=device)
    if where is None:
        where = torch.arange(len(targets.tokens), device=device)
    logprobs = torch.log_softmax(logits, dim=-1)
    picked = logprobs[where, token]
    greedy = logits.argmax(-1)[where] == token
    owner = torch.tensor(targets.owners, dtype=torch.long, device=device)
    sums = torch.zeros(n_sequences, device=device).index_add(0, owner, picked)
    misses = torch.zeros(n_sequences, device=device).index_add(0, owner, (~greedy).float())
    return sums, misses == 0


def _recording(recorder: GateRecorder | None):
    return recorder.forward() if recorder is not None else nullcontext()


def _scores(sums: torch.Tensor, all_greedy: torch.Tensor, grad: bool) -> list[Score]:
    return [(s if grad else float(s), bool(g)) for s, g in zip(sums, all_greedy, strict=True)]


def continuation_logprobs(
    model: nn.Module,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    pad_id: int,
    batch_size: int = 16,
    progress: bool = False,
    grad: bool = False,
    recorder: GateRecorder | None = None,
) -> list[Score]:
    """Sum of log p(continuation | context) and whether it is the greedy continuation.

    Sequences are sorted by length so padded batches waste little; results come back
    in input order. `recorder` keeps where its hook's gate was open in each sequence.
    """
    device = next(model.parameters()).device
    base = decoder(model)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0] + sequences[i][1]))
    results: list[Score] = [(0.0, False)] * len(sequences)
    with torch.enable_grad() if grad else torch.no_grad():
        for lo in tqdm(range(0, len(order), batch_size), desc="score", disable=not progress):
            idx = order[lo : lo + batch_size]
            seqs = [list(sequences[i][0]) + list(sequences[i][1]) for i in idx]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for j, s in enumerate(seqs):
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            with _recording(recorder):
                hidden = final_hidden(
                    base, input_ids=ids.to(device), attention_mask=mask.to(device)
                )
            if recorder is not None:  # every position but the last one (right padding)
                for j, i in enumerate(idx):
                    recorder.take(i, j, slice(0, len(seqs[j]) - 1))
            targets = Targets()
            for j, i in enumerate(idx):
                targets.add(j, len(sequences[i][0]), sequences[i][1], row=j)
            logits = output_logits(model, hidden[targets.rows, targets.cols]).float()
            scores = _scores(*sequence_logprobs(logits, targets, len(idx)), grad)
            for j, i in enumerate(idx):
                results[i] = scores[j]
    return results


@dataclass(frozen=True)
class Unsteered:
    """Each sequence's log-likelihood scored without the clamp hook (the baseline's), and
    where it came from (for errors). Where the hook edits nothing a sequence reads, it leaves
    that sequence's residual stream exactly as it is, so the steered value is this one."""

    loglik: Sequence[float]
    source: str


def _on_device(mask, device):
    return {k: v.to(device) for k, v in mask.items()} if isinstance(mask, dict) else mask.to(device)


def score_sequences(
    model: nn.Module,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    max_tokens: int = 512,
    grad: bool = False,
    progress: bool = False,
    recorder: GateRecorder | None = None,
    unsteered: Unsteered | None = None,
    keep: RowResiduals | None = None,
    start: RowResiduals | None = None,
) -> list[Score]:
    """`continuation_logprobs` computing every shared prefix once: the prefix common to all
    sequences in a KV cache, the rest in prefix trees of up to `max_tokens` nodes, each
    packed into one row where a token sees only its own ancestors.

    With `unsteered` (and a `recorder` whose hook is the one attached), each row first runs
    up to the hook's block. A sequence the hook edited nowhere it reads takes its unsteered
    value (greedy flag None); only the others run on through the remaining blocks and the
    unembedding. Where most of a benign set leaves the gate closed, that is about half the
    work. The first reused sequence is also scored, and must agree within `REUSE_TOLERANCE`
    (a baseline of another model, format or template does not).

    `keep` is filled with each packed row's residual stream after `keep.block`, as the
    unsteered model computes it; a steered scoring of the same rows can `start` there, running
    only the blocks after it (nothing but the clamp hook, above that block, may differ).
    """
    if not sequences:
        return []
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        # Packed rows need an arbitrary additive mask, which only these kernels take.
        pad = getattr(model.config, "pad_token_id", None) or 0
        return continuation_logprobs(model, sequences, pad, 16, progress, grad, recorder)
    block = _reuse_block(model, recorder, unsteered, grad, len(sequences))
    _check_keep(model, keep, start)
    if start is not None and not _untouched(model, start.block):
        start = None  # a hook at or below its block would be skipped: the rows start at 0
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    base = decoder(model)
    full = [list(ctx) + list(cont) for ctx, cont in sequences]
    # At least the last context token of each sequence stays out of the cached prefix:
    # its hidden state predicts the first continuation token.
    shared = min(common_prefix(full), min(len(ctx) for ctx, _ in sequences) - 1)
    rows = pack_rows(full, shared, max_tokens)
    if start is not None:
        start.check_rows([trie.tokens for trie, _ in rows])
    results: list[Score] = [(0.0, False)] * len(sequences)
    with torch.enable_grad() if grad else torch.no_grad():
        # A gated clamp reads earlier positions: the prefix tells whether its gate is
        # already open, and each packed row tells it which positions see which.
        with gate_layout(model, GateLayout()) as gated:
            with _recording(recorder if shared else None):
                root = prefix_cache(base, full[0][:shared], device)
        if recorder is not None and shared:
            for i in range(len(sequences)):
                recorder.take(i, 0, slice(0, shared))
            if block is not None and bool(recorder.edited()[0, :shared].any()):
                block = None  # every sequence reads the edited prefix: nothing to reuse
        carry = gate_carry(gated)
        if start is not None:
            _check_start(model, start, rows, shared, root, carry)
        checked = False
        for r, (trie, members) in enumerate(tqdm(rows, desc="score", disable=not progress)):
            ancestry, positions, mask = packed_inputs(trie, shared, model.config, dtype)
            ids = torch.tensor([trie.tokens])
            layout = GateLayout(ancestry, positions, carry)
            cache = _cache_copy(root)
            inputs = _inputs(trie, positions, mask, device)
            known = None if start is None else (start.block, start.row(r, device, dtype))
            if block is None:
                with gate_layout(model, layout), _recording(recorder), _kept(base, keep) as kept:
                    if known is None:
                        hidden = final_hidden(base, cache, **inputs)[0]
                    else:
                        hidden = final_hidden_after_block(base, *known, cache, **inputs)[0]
                if keep is not None:
                    keep.add(trie.tokens, kept[keep.block][0])
                if recorder is not None:  # the sequence's nodes but its last token's
                    for i, path in members:
                        recorder.take(i, 0, path[:-1])
                scored = members
            else:
                with gate_layout(model, layout), _recording(recorder):
                    after = hidden_after_block(base, block, cache, start=known, **inputs)
                for i, path in members:
                    recorder.take(i, 0, path[:-1])
                scored, reused = _split_by_edits(members, recorder.edited()[0])
                for i, _ in reused:
                    results[i] = (float(unsteered.loglik[i]), None)
                if reused and not checked:  # the first reused one also runs on, as a check
                    scored.append(reused[0])
                    checked = True
                if not scored:
                    continue
                keep = torch.tensor(sorted({node for _, path in scored for node in path}))
                index = {int(node): k for k, node in enumerate(keep)}
                scored = [(i, [index[node] for node in path]) for i, path in scored]
                sub_ancestry, sub_positions = ancestry[keep][:, keep], positions[keep]
                sub_mask = tree_mask(sub_ancestry, sub_positions, shared, model.config, dtype)
                with gate_layout(model, GateLayout(sub_ancestry, sub_positions, carry)):
                    hidden = final_hidden_after_block(
                        base,
                        block,
                        after[:, keep],
                        _cache_copy(root),
                        input_ids=ids[:, keep].to(device),
                        position_ids=sub_positions[None].to(device),
                        attention_mask=_on_device(sub_mask, device),
                    )[0]
            targets = Targets()
            for j, (i, path) in enumerate(scored):
                targets.add(j, len(sequences[i][0]) - shared, sequences[i][1], nodes=path)
            # One unembedding per distinct node: a question's choices are all predicted
            # from its last context token, and the 262k-way unembedding dominates here.
            nodes, where = torch.unique(torch.tensor(targets.cols), return_inverse=True)
            logits = output_logits(model, hidden[nodes.to(device)]).float()
            sums, all_greedy = sequence_logprobs(
                logits, targets, len(scored), where.to(logits.device)
            )
            for (i, _), score in zip(scored, _scores(sums, all_greedy, grad), strict=True):
                if results[i][1] is None:  # the reused sequence scored as a check
                    _check_reused(unsteered, i, score[0])
                    continue
                results[i] = score
    return results


# Reused values are the baseline's own bits where it packed the rows as scored here; other
# packings round differently in the last bits, another model or format by far more.
REUSE_TOLERANCE = 1e-3


def _check_reused(unsteered: Unsteered, i: int, computed: float) -> None:
    given = float(unsteered.loglik[i])
    if abs(given - computed) > REUSE_TOLERANCE:
        raise UserError(
            f"{unsteered.source}: sequence {i} has the unsteered log-likelihood {given:.6f} "
            f"there, but this model scores it {computed:.6f} where the clamp hook edits "
            "nothing. Those results are of another model, format or template. Fix: score "
            "the baseline with this model and evaluation settings"
        )


# transformers 5 installs these on every layer the first time a forward asks for hidden states,
# and keeps them; they record outputs and never change one.
RECORDING_HOOKS = ("output_capturing_hook",)


def _untouched(model: nn.Module, block: int) -> bool:
    """Nothing but the model computes the residual stream up to block `block`: no hook on
    the embedding or on those blocks (a clamp hook, an added residual, soft tokens) but
    transformers' own recorders."""
    base = decoder(model)
    below = [base.get_input_embeddings(), *decoder_layers(base)[: block + 1]]
    hooks = [h for m in below for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
    return all(getattr(h, "__name__", "") in RECORDING_HOOKS for h in hooks)


def _check_keep(model: nn.Module, keep: RowResiduals | None, start: RowResiduals | None) -> None:
    if keep is None:
        return
    if keep.tokens or start is not None:
        raise ValueError("residuals are kept into an empty store, in a scoring from block 0")
    if not _untouched(model, keep.block):
        raise ValueError(f"a hook edits the residual stream at or below block {keep.block}")


def _kept(base: nn.Module, keep: RowResiduals | None):
    return capture_residuals(base, [keep.block]) if keep is not None else nullcontext({})


def _check_start(model: nn.Module, kept: RowResiduals, rows, shared: int, root, carry) -> None:
    """The kept residuals must be this model's: the shortest row recomputed up to their block
    (another model's would give wrong scores without a word)."""
    r = min(range(len(rows)), key=lambda r: len(rows[r][0].tokens))
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    ancestry, positions, mask = packed_inputs(rows[r][0], shared, model.config, dtype)
    inputs = _inputs(rows[r][0], positions, mask, device)
    with gate_layout(model, GateLayout(ancestry, positions, carry)):
        fresh = hidden_after_block(decoder(model), kept.block, _cache_copy(root), **inputs)
    kept.check_values(r, fresh[0])


def _inputs(trie, positions: torch.Tensor, mask, device) -> dict:
    """A packed row's forward arguments."""
    return dict(
        input_ids=torch.tensor([trie.tokens], device=device),
        position_ids=positions[None].to(device),
        attention_mask=_on_device(mask, device),
    )


def _cache_copy(root: DynamicCache | None) -> DynamicCache | None:
    return reusable(root) if root is not None else None


def _split_by_edits(members, edited: torch.Tensor) -> tuple[list, list]:
    """A row's members the hook edited somewhere they read (`edited`: the row's positions),
    and the rest."""
    run_on, reused = [], []
    for i, path in members:
        (run_on if bool(edited[path[:-1]].any()) else reused).append((i, path))
    return run_on, reused


def _reuse_block(
    model: nn.Module,
    recorder: GateRecorder | None,
    unsteered: Unsteered | None,
    grad: bool,
    n_sequences: int,
) -> int | None:
    """The block whose output the reusing path stops at (the hook's), None without reuse."""
    if unsteered is None:
        return None
    if grad or recorder is None:
        raise ValueError("reusing unsteered scores needs a recorder's hook and no gradient")
    if attached_hooks(model) != [recorder.hook] or recorder.hook.block is None:
        raise ValueError("reusing unsteered scores needs the recorder's hook, alone, attached")
    if len(unsteered.loglik) != n_sequences:
        raise ValueError(f"{len(unsteered.loglik)} unsteered scores for {n_sequences} sequences")
    return recorder.hook.block
