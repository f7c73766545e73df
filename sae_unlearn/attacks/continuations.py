"""The generation family: greedy continuations of forget prompts, with and without each
model's GCG suffix: fluent (low perplexity under the unsteered model, and not repetitive)
and leaking (naming the correct choice and no other), each share with its 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.attacks.family import FamilyOutputs
from sae_unlearn.attacks.generation import (
    continuation_perplexities,
    distinct_n,
    fluency_summary,
    is_repetitive,
    longest_repeat,
    names_answer,
)
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.metrics import bootstrap_ci
from sae_unlearn.evaluation.prompts import prompt_texts
from sae_unlearn.generation.greedy import greedy_generate
from sae_unlearn.steering import ClampHook

SETTINGS = ("plain", "suffix")


@dataclass(frozen=True)
class GenerationConfig:
    n_prompts: int = 16  # forget questions whose prompts are continued
    max_new_tokens: int = 20
    fluent_ppl: float = 50.0  # perplexity under which a continuation counts as fluent
    n_samples: int = 5  # continuations kept as examples
    # ...and not repetitive: distinct-2 at least this, no repeated n-gram longer than max_repeat
    min_distinct_2: float = 0.75
    max_repeat: int = 3


def generation_attack(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: pd.DataFrame,
    hooks: dict[str, ClampHook | None],
    cfg: GenerationConfig,
    eval_cfg: EvalConfig,
    suffixes: Mapping[str, str],
    log: Callable[[str], None] = print,
) -> FamilyOutputs:
    """Per model in `hooks`: the first `n_prompts` of `questions` continued greedily (the
    gate followed across decoding steps), `plain` and with `suffixes[model]`; perplexity is
    read by the unsteered model."""
    prompts_set = questions.head(cfg.n_prompts)
    boot, seed = eval_cfg.bootstrap, eval_cfg.seed
    out = FamilyOutputs()
    fluency: dict = {}
    samples: dict = {}
    for name, hook in hooks.items():
        fluency[name], shown = {}, {}
        for setting in SETTINGS:
            suffix = suffixes[name] if setting == "suffix" else ""
            texts = prompt_texts(prompts_set, eval_cfg.format, suffix)
            generated = greedy_generate(
                model, tokenizer, texts, hook, cfg.max_new_tokens, eval_cfg.batch_size
            )
            conts = [c.new_ids for c in generated]  # EOS dropped
            ppl = continuation_perplexities(model, tokenizer, texts, conts, eval_cfg.batch_size)
            decoded = [tokenizer.decode(c, skip_special_tokens=True) for c in conts]
            leaks = [
                names_answer(text, list(row.choices), int(row.answer), eval_cfg.format)
                for text, row in zip(decoded, prompts_set.itertuples(index=False), strict=True)
            ]
            summary = fluency_summary(
                ppl, cfg.fluent_ppl, conts, cfg.min_distinct_2, cfg.max_repeat, boot, seed
            )
            summary["leak_share"] = float(np.mean(leaks)) if leaks else 0.0
            summary["leak_share_ci"] = bootstrap_ci(np.array(leaks, dtype=float), boot, seed)
            fluency[name][setting] = summary
            shown[setting] = [
                {
                    "prompt": texts[i],
                    "continuation": decoded[i],
                    "perplexity": ppl[i],
                    "distinct_2": distinct_n(conts[i], 2),
                    "longest_repeat": longest_repeat(conts[i]),
                    "repetitive": is_repetitive(conts[i], cfg.min_distinct_2, cfg.max_repeat),
                    "names_answer": leaks[i],
                }
                for i in range(min(cfg.n_samples, len(prompts_set)))
            ]
            log(
                f"generation {setting} {name}: fluent {summary['fluent_share']:.2f}, "
                f"leaks {summary['leak_share']:.2f}"
            )
        samples[name] = [
            {"question": prompts_set.iloc[i]["question"], **{s: shown[s][i] for s in SETTINGS}}
            for i in range(len(shown["plain"]))
        ]
    out.metrics.update(
        fluency=fluency,
        fluent_ppl=cfg.fluent_ppl,
        min_distinct_2=cfg.min_distinct_2,
        max_repeat=cfg.max_repeat,
        max_new_tokens=cfg.max_new_tokens,
        n_prompts=len(prompts_set),
    )
    out.records["samples"] = samples
    out.records["suffixes"] = {name: suffixes[name] for name in hooks}
    return out
