"""Zero-shot multiple-choice evaluation, scored exactly like lm-evaluation-harness.

Modules: `config` (EvalConfig), `prompts` (the one prompt builder), `requests` (requests
and their tokenisation), `forward` and `packing` (model calls, prefix trees and masks),
`scoring` (the scoring engine, dense and packed), `residuals` (the unsteered rows' residual
stream a steered scoring starts from), `results` (the per-question frame),
`metrics` (accuracy, bootstrap intervals, dev/test halves, alignment), `known` (SAEBench's
known questions: the letter-format permutation check), `contamination` (the retain roles
after a benign forget-topic sentence), `run` (evaluating question sets).
"""

from sae_unlearn.evaluation.config import FORMATS, EvalConfig
from sae_unlearn.evaluation.contamination import (
    CONTAMINATED,
    EVAL_ROLES,
    contaminate,
    contamination_sentence,
    with_contaminated,
)
from sae_unlearn.evaluation.fingerprint import check_baseline_fingerprints, question_fingerprint
from sae_unlearn.evaluation.forward import output_logits
from sae_unlearn.evaluation.known import (
    ORDERINGS,
    baseline_known_summary,
    known_correct_summary,
    known_under_all_orderings,
    permuted_questions,
)
from sae_unlearn.evaluation.metrics import (
    CHANCE,
    accuracy_summary,
    add_alignment,
    alignment_score,
    bootstrap_ci,
    retention_ratio,
    role_summary,
    split_summaries,
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
from sae_unlearn.evaluation.residuals import (
    RowResiduals,
    kept_block,
    read_role_residuals,
    residuals_path,
    write_residuals,
)
from sae_unlearn.evaluation.results import read_role_results, results_frame
from sae_unlearn.evaluation.run import (
    add_baseline_known,
    add_steered_known,
    check_baseline_format,
    check_baseline_results,
    checked_clamp,
    evaluate_questions,
    evaluate_sets,
    load_clamp_hook,
    maybe_steer,
)
from sae_unlearn.evaluation.scoring import continuation_logprobs, score_sequences

__all__ = [
    "CHANCE",
    "CONTAMINATED",
    "EVAL_ROLES",
    "FORMATS",
    "LETTERS",
    "ORDERINGS",
    "SUBJECT_NAMES",
    "EvalConfig",
    "Request",
    "RowResiduals",
    "accuracy_summary",
    "check_baseline_fingerprints",
    "question_fingerprint",
    "add_alignment",
    "add_baseline_known",
    "add_steered_known",
    "alignment_score",
    "answer_continuations",
    "baseline_known_summary",
    "bootstrap_ci",
    "build_requests",
    "check_baseline_format",
    "check_baseline_results",
    "checked_clamp",
    "contaminate",
    "contamination_sentence",
    "continuation_logprobs",
    "encode_pair",
    "evaluate_questions",
    "evaluate_sets",
    "format_prompt",
    "kept_block",
    "known_correct_summary",
    "known_under_all_orderings",
    "load_clamp_hook",
    "maybe_steer",
    "output_logits",
    "permuted_questions",
    "prompt_texts",
    "question_body",
    "read_role_residuals",
    "read_role_results",
    "residuals_path",
    "results_frame",
    "retention_ratio",
    "role_summary",
    "score_sequences",
    "split_summaries",
    "subject_description",
    "target_continuation",
    "with_contaminated",
    "write_residuals",
]
