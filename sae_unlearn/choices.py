"""The allowed values of every setting that takes one of a list: one owner for each list.

The library's configs check against these, and the params schema (`pipeline/params.py`)
builds its types from them, so the schema accepts exactly what the library does. Kept free
of imports so that every stage can depend on it cheaply.
"""

from __future__ import annotations

DTYPE_NAMES = ("float32", "bfloat16", "float16")
SAE_SOURCES = ("train", "pretrained", "path")
SAE_ARCHITECTURES = ("batchtopk", "topk", "jumprelu", "standard")
# Those trained with k active latents per token (batchtopk: on average over a batch).
SAE_TOPK_ARCHITECTURES = ("batchtopk", "topk")
SAE_NORMALIZATIONS = ("expected_average_only_in", "none")
CLAMP_MODES = ("clamp_prime", "refusal_clamp", "gated_clamp")
GATES = ("latched", "window", "token_share")
EVAL_FORMATS = ("cloze", "letter")
PRIMARY_METRICS = ("acc", "acc_norm")
RANKING_SCORES = ("forget_freq", "freq_ratio", "log_odds", "forget_window_freq", "crisp")
# Evasion attack perturbations (sae_unlearn/attacks/perturb.py says what each does).
EVASION_PERTURBATIONS = (
    "upper",
    "lower",
    "char_noise",
    "split_words",
    "filler",
    "template",
    "synonyms",
)
# Attack families with a stage pair of their own (attack-<family>-baseline, attack-<family>).
# In DAG order: generation continues with the suffixes gcg found.
ATTACK_FAMILIES = ("fewshot", "icl", "evasion", "gcg", "whitebox", "relearn", "generation")
# How the relearning attack fine-tunes: LoRA adapters (peft) or the last blocks in full.
RELEARN_METHODS = ("lora", "top_layers")
# How the activation cache stores its vectors: float32 as computed, or half the bytes a token
# (float16 keeps 10 mantissa bits in a narrow range, bfloat16 8 bits over float32's range).
CACHE_DTYPES = ("float32", "float16", "bfloat16")
# Who runs the cache's forward passes: this process, or a Ray Data pipeline of model actors.
CACHE_ENGINES = ("local", "ray")
