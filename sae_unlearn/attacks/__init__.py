"""Adversarial evaluation of the steered model and the unsteered baseline.

Modules, one per attack family: `fewshot`, `gcg` (with `gcg_tokens`: its prompts and the
suffix's tokens), `generation` (the gibberish check); `subsets` (seeded question subsets)
and `run` (the attack stage's phases). Every attack runs against whatever model it is
handed; `maybe_steer` attaches the hook.
"""

from sae_unlearn.attacks.fewshot import draw_shots, fewshot_attack
from sae_unlearn.attacks.gcg import GCGConfig, GCGResult, candidate_losses, run_gcg, token_gradient
from sae_unlearn.attacks.gcg_tokens import GCGPrompt, allowed_token_mask, gcg_prompts
from sae_unlearn.attacks.generation import (
    continuation_perplexities,
    fluency_summary,
)
from sae_unlearn.attacks.run import (
    MODELS,
    AttackConfig,
    AttackOutputs,
    GibberishConfig,
    PhaseClock,
    run_attacks,
)
from sae_unlearn.attacks.subsets import deterministic_subset
from sae_unlearn.evaluation.prompts import prompt_texts
from sae_unlearn.evaluation.run import maybe_steer
from sae_unlearn.evaluation.scoring import score_sequences

__all__ = [
    "MODELS",
    "AttackConfig",
    "AttackOutputs",
    "GCGConfig",
    "GCGPrompt",
    "GCGResult",
    "GibberishConfig",
    "PhaseClock",
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
    "run_attacks",
    "run_gcg",
    "score_sequences",
    "token_gradient",
]
