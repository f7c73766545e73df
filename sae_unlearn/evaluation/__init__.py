"""Zero-shot multiple-choice evaluation, scored exactly like lm-evaluation-harness.

Modules: `config` (EvalConfig), `prompts` (the one prompt builder), `requests` (requests
and their tokenisation), `forward` and `packing` (model calls, prefix trees and masks),
`scoring` (the scoring engine, dense and packed), `results` (the per-question frame),
`metrics` (accuracy, bootstrap intervals, alignment), `run` (evaluating question sets).
"""

from sae_unlearn.evaluation.config import FORMATS, EvalConfig
from sae_unlearn.evaluation.forward import output_logits
from sae_unlearn.evaluation.metrics import (
    CHANCE,
    accuracy_summary,
    add_alignment,
    alignment_score,
    bootstrap_ci,
    retention_ratio,
)
from sae_unlearn.evaluation.prompts import (
    LETTERS,
    SUBJECT_NAMES,
    answer_continuations,
    format_prompt,
    prompt_texts,
    question_body,
    subject_description,
    target_continuation,
)
from sae_unlearn.evaluation.requests import Request, build_requests, encode_pair
from sae_unlearn.evaluation.results import results_frame
from sae_unlearn.evaluation.run import (
    check_baseline_format,
    evaluate_questions,
    evaluate_sets,
    load_clamp_hook,
    maybe_steer,
)
from sae_unlearn.evaluation.scoring import continuation_logprobs, score_sequences

__all__ = [
    "CHANCE",
    "FORMATS",
    "LETTERS",
    "SUBJECT_NAMES",
    "EvalConfig",
    "Request",
    "accuracy_summary",
    "add_alignment",
    "alignment_score",
    "answer_continuations",
    "bootstrap_ci",
    "build_requests",
    "check_baseline_format",
    "continuation_logprobs",
    "encode_pair",
    "evaluate_questions",
    "evaluate_sets",
    "format_prompt",
    "load_clamp_hook",
    "maybe_steer",
    "output_logits",
    "prompt_texts",
    "question_body",
    "results_frame",
    "retention_ratio",
    "score_sequences",
    "subject_description",
    "target_continuation",
]
