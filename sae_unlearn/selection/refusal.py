"""The refusal latent the refusal-clamp mode drives: the one most active on refusal text
relative to neutral text (`clamp.refusal_latent: auto`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.activations import special_token_ids
from sae_unlearn.errors import UserError
from sae_unlearn.models import capture_residuals, check_layer, hidden_size, run_to_layers
from sae_unlearn.saes.io import check_sae_width
from sae_unlearn.selection.encode import encode_dense

# Refusals in the style of chat assistants (the paper's refusal latent fires on text like
# the first one), and neutral sentences of the same register and length: compliant
# assistant replies and plain statements, so the contrast is refusal, not assistant-speak.
REFUSAL_TEXTS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I cannot assist with that request.",
    "I can't help with that. Is there anything else I can do for you?",
    "Sorry, I can't provide instructions for that.",
    "I'm afraid I can't do that; it could cause serious harm.",
    "I cannot help with this request because it is dangerous.",
    "I apologize, but I won't be able to help with that.",
    "As an AI assistant, I must decline to answer that question.",
)
NEUTRAL_TEXTS = (
    "Sure, here is a simple recipe for banana bread.",
    "Of course! The capital of France is Paris.",
    "Happy to help. Water boils at 100 degrees Celsius at sea level.",
    "Here are three tips for getting better sleep at night.",
    "The train leaves the station at nine in the morning.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Yes, you can store fresh basil in a glass of water.",
    "The museum opens on Saturday and tickets cost ten dollars.",
)


@torch.no_grad()
def _mean_latents(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    texts: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean activation and firing frequency of every latent over the texts' non-special tokens."""
    special = torch.tensor(special_token_ids(tokenizer), dtype=torch.long)
    device = next(model.parameters()).device
    total = torch.zeros(int(sae.cfg.d_sae), dtype=torch.float64)
    fires = torch.zeros(int(sae.cfg.d_sae), dtype=torch.float64)
    n = 0
    with capture_residuals(model, [layer], stop_after_last=True) as captured:
        # One text at a time: no padding, so no pad tokens or shifted positions to undo.
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            acts = run_to_layers(
                model,
                captured,
                input_ids=ids.to(device),
                attention_mask=torch.ones_like(ids, device=device),
            )[layer][0]
            keep = ~torch.isin(ids[0], special)
            f = encode_dense(sae, acts[keep.to(acts.device)].float()).double().cpu()
            total += f.sum(0)
            fires += (f > 0).sum(0)
            n += len(f)
    if n == 0:
        raise UserError("the texts hold no non-special tokens")
    return total / n, fires / n


def refusal_scores(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    refusal_texts: Sequence[str] = REFUSAL_TEXTS,
    neutral_texts: Sequence[str] = NEUTRAL_TEXTS,
) -> pd.DataFrame:
    """Per latent: mean activation and firing frequency on refusal and on neutral text,
    and `score` = refusal_mean - neutral_mean; best first (ties: lowest latent)."""
    if not refusal_texts or not neutral_texts:
        raise UserError("refusal_scores needs at least one refusal and one neutral text")
    check_layer(model, layer, what="sae.layer")
    d_model = hidden_size(model)
    check_sae_width(
        sae,
        d_model,
        found=f"the model's hidden size is {d_model}",
        advice="use an SAE for this model and layer",
    )
    refusal_mean, refusal_freq = _mean_latents(model, tokenizer, sae, layer, refusal_texts)
    neutral_mean, neutral_freq = _mean_latents(model, tokenizer, sae, layer, neutral_texts)
    frame = pd.DataFrame(
        {
            "latent": np.arange(len(refusal_mean), dtype=np.int64),
            "refusal_mean": refusal_mean.numpy(),
            "neutral_mean": neutral_mean.numpy(),
            "refusal_freq": refusal_freq.numpy(),
            "neutral_freq": neutral_freq.numpy(),
            "score": (refusal_mean - neutral_mean).numpy(),
        }
    )
    return frame.sort_values(
        ["score", "latent"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)


def find_refusal_latent(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sae: nn.Module,
    layer: int,
    refusal_texts: Sequence[str] = REFUSAL_TEXTS,
    neutral_texts: Sequence[str] = NEUTRAL_TEXTS,
) -> int:
    """The latent most active on refusal text relative to neutral text (`clamp.refusal_latent:
    auto`): the largest difference of mean activations, special tokens excluded."""
    table = refusal_scores(model, tokenizer, sae, layer, refusal_texts, neutral_texts)
    best = table.iloc[0]
    if not best["score"] > 0:
        raise UserError(
            "no SAE latent is more active on the refusal texts than on the neutral ones; "
            "set clamp.refusal_latent to a latent index explicitly"
        )
    return int(best["latent"])
