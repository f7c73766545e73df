"""Greedy continuations, unsteered and steered, with where the clamp's gate opened
(`sae-unlearn generate`): `greedy` runs transformers' cached `generate` and reads the gate
from the hook, `render` lays the two continuations out side by side."""

from sae_unlearn.generation.greedy import Continuation, greedy_generate, read_prompts
from sae_unlearn.generation.render import MARKS, compare_continuations, marked_text, render

__all__ = [
    "MARKS",
    "Continuation",
    "compare_continuations",
    "greedy_generate",
    "marked_text",
    "read_prompts",
    "render",
]
