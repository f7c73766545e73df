"""Names the report shares: chance accuracy, the two models, the roles, the paper's result."""

from __future__ import annotations

# Four-choice chance accuracy, as sae_unlearn.evaluation.CHANCE (not imported from there: it
# would load torch and transformers into a command that only reads JSON and parquet).
CHANCE = 0.25

MODELS = ("baseline", "steered")
# Every role evaluation scores, in its order (sae_unlearn.evaluation.EVAL_ROLES, not imported
# for the same reason); a run shows those it has.
ROLES = ("forget", "retain", "retain_near", "retain_contaminated", "retain_near_contaminated")
# The benign roles whose gate openings the report lists: where a gate should stay shut.
BENIGN_ROLES = ROLES[1:]

# The paper's refusal-clamp result on gemma-2-2b + Gemma Scope layer 7 (Khoriaty et al. 2025):
# WMDP-bio 0.5860 -> 0.2718 at alignment 0.8226. The paper reports no pooled retain accuracy
# for it, so PAPER_RETAIN_STEERED is derived from the alignment: R_forget = (0.2718 - 0.25) /
# (0.5860 - 0.25), R_retain = 0.8226 / (1 - R_forget), and retain = 0.25 + R_retain * (o - 0.25)
# with o the baseline retain accuracy pooled by question count over the four MMLU subjects
# (0.6029 x 204, 0.6010 x 198, 0.5874 x 223, 0.4300 x 100 questions).
PAPER_MODEL = "gemma-2-2b"
PAPER_FORGET_BASELINE = 0.5860
PAPER_FORGET_STEERED = 0.2718
PAPER_ALIGNMENT = 0.8226
PAPER_RETAIN_BASELINE = (0.6029 * 204 + 0.6010 * 198 + 0.5874 * 223 + 0.4300 * 100) / 725
_R_FORGET = (PAPER_FORGET_STEERED - CHANCE) / (PAPER_FORGET_BASELINE - CHANCE)
PAPER_RETAIN_STEERED = CHANCE + PAPER_ALIGNMENT / (1 - _R_FORGET) * (PAPER_RETAIN_BASELINE - CHANCE)
