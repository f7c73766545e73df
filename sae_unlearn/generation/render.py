"""Unsteered and steered continuations side by side, with the gate's marks in the text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.generation.greedy import Continuation, greedy_generate
from sae_unlearn.steering import ClampHook

MARKS = ("⟦", "⟧")


@dataclass
class Comparison:
    prompt: str
    unsteered: Continuation
    steered: Continuation


def compare_continuations(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    hook: ClampHook,
    max_new_tokens: int = 20,
    batch_size: int = 8,
) -> list[Comparison]:
    """Each prompt's greedy continuation without and with the clamp hook."""
    plain = greedy_generate(model, tokenizer, prompts, None, max_new_tokens, batch_size)
    steered = greedy_generate(model, tokenizer, prompts, hook, max_new_tokens, batch_size)
    return [Comparison(*row) for row in zip(prompts, plain, steered, strict=True)]


def marked_text(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], marks: Sequence[bool]
) -> str:
    """`ids` decoded, each marked token's text wrapped in ⟦ ⟧ (special tokens dropped).
    A token's text is what it adds to the decoded prefix, so multi-byte characters split
    over tokens come out whole."""
    if not any(marks):
        return tokenizer.decode(list(ids), skip_special_tokens=True)
    pieces, before = [], ""
    for i in range(len(ids)):
        upto = tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True)
        piece = upto[len(before) :] if upto.startswith(before) else upto
        pieces.append(f"{MARKS[0]}{piece}{MARKS[1]}" if marks[i] and piece else piece)
        before = upto
    return "".join(pieces)


def _gate_line(c: Continuation, gated: bool) -> str:
    if not gated:
        n = sum(c.prompt_marks) + sum(c.new_marks)
        return f"clamp acted at {n} of {len(c.prompt_ids) + len(c.new_ids)} tokens"
    if any(c.prompt_marks):
        return f"gate opened in the prompt (token {c.prompt_marks.index(True)})"
    if any(c.new_marks):
        return f"gate opened in the continuation (token {c.new_marks.index(True)})"
    return "gate never opened"


def render(
    tokenizer: PreTrainedTokenizerBase, comparisons: Sequence[Comparison], gated: bool
) -> str:
    """The comparisons as text: the prompt and steered continuation carry the marks."""
    what = "where the gate opened" if gated else "where the clamp changed a latent"
    lines = [f"{MARKS[0]} {MARKS[1]} marks the tokens {what}", ""]
    for n, c in enumerate(comparisons, start=1):
        s = c.steered
        lines += [
            f"[{n}] prompt:    {marked_text(tokenizer, s.prompt_ids, s.prompt_marks)}",
            f"    unsteered: {marked_text(tokenizer, c.unsteered.new_ids, [])}",
            f"    steered:   {marked_text(tokenizer, s.new_ids, s.new_marks)}",
            f"    ({_gate_line(s, gated)})",
            "",
        ]
    return "\n".join(lines)
