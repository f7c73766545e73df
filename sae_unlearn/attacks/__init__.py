"""Adversarial evaluation of the steered model and the unsteered baseline.

One module per attack family, each giving `family.FamilyOutputs` per model: `icl`
(in-context shots, also the `fewshot` family's retain shots, with `fewshot`: drawing and
scoring them), `evasion` (with `perturb` and `synonyms`), `gcg_family` (with `gcg`, the
optimiser, and `gcg_tokens`: its prompts and the suffix's tokens), `whitebox`, `relearn`,
and `continuations` (the generation family, with `generation`'s measures). `family`
writes, checks and joins the baseline's and the steered model's halves; `reference` reads
the unattacked results from the evaluation; `subsets` draws the seeded question subsets.
Every attack runs against whatever model it is handed; `maybe_steer` attaches the hook.
"""

from sae_unlearn.attacks.fewshot import draw_shots, fewshot_attack
from sae_unlearn.attacks.gcg import GCGConfig, GCGResult, candidate_losses, run_gcg, token_gradient
from sae_unlearn.attacks.gcg_tokens import GCGPrompt, allowed_token_mask, gcg_prompts
from sae_unlearn.attacks.generation import (
    continuation_perplexities,
    fluency_summary,
)
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.evaluation.prompts import prompt_texts
from sae_unlearn.evaluation.run import maybe_steer
from sae_unlearn.evaluation.scoring import score_sequences

__all__ = [
    "GCGConfig",
    "GCGPrompt",
    "GCGResult",
    "allowed_token_mask",
    "candidate_losses",
    "continuation_perplexities",
    "deterministic_subset",
    "draw_shots",
    "fewshot_attack",
    "fluency_summary",
    "gcg_prompts",
    "maybe_steer",
    "prompt_texts",
    "run_gcg",
    "score_sequences",
    "token_gradient",
]
