"""Shared test inputs: a tiny two-corpus cache's settings, an SAE planted on it, a dense
reference computation, and hand-built statistics and window maxima."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from sae_unlearn.activations import read_activations, read_tokens
from tests.tiny import TRAINING_TEXT

LAYER, D, D_SAE = 1, 32, 24
SEQ_LEN = 24
FORGET_TEXTS = [TRAINING_TEXT[i] for i in (0, 1, 5)] * 8
RETAIN_TEXTS = [TRAINING_TEXT[i] for i in (2, 3, 4, 6, 7)] * 5


def non_special(path: Path) -> torch.Tensor:
    special = read_tokens(path).column("is_special").to_numpy(zero_copy_only=False)
    return torch.from_numpy(~special)


def planted_sae(cache_dir: Path, kind: str = "standard", seed: int = 0):
    """An SAE whose latents fire on very different fractions of the tokens (and one never
    fires): each bias sits midway between two sorted pre-activations, so no token lies
    on the firing boundary where rounding could flip it."""
    torch.manual_seed(seed)
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D, d_sae=D_SAE, k=6, apply_b_dec_to_input=False))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=D_SAE, apply_b_dec_to_input=False))
    x = torch.cat([read_activations(cache_dir / c, LAYER) for c in ("forget", "retain")])
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.W_dec.normal_()
        sae.b_dec.zero_()
        pre = (x @ sae.W_enc).sort(0).values
        quantiles = torch.linspace(0.02, 0.98, D_SAE)
        for j, q in enumerate(quantiles.tolist()):
            k = int(q * (len(pre) - 2))
            sae.b_enc[j] = -(pre[k, j] + pre[k + 1, j]) / 2
        sae.b_enc[D_SAE - 1] = -1e6  # dead latent
    return sae.eval()


def dense_statistics(sae, path: Path, top_n: int):
    """The reference: every token encoded at once, special tokens dropped afterwards."""
    with torch.no_grad():
        f_all = sae.encode(read_activations(path, LAYER, include_special=True)).double()
    keep = non_special(path)
    f = f_all[keep]
    top = [
        sorted((v for v in f[:, j].tolist() if v > 0), reverse=True)[:top_n] for j in range(D_SAE)
    ]
    return {
        "freq": (f > 0).double().mean(0),
        "mean": f.mean(0),
        "max": f.max(0).values,
        "top": top,
        "all": f_all,
        "keep": keep,
    }


def hand_stats() -> pd.DataFrame:
    forget = [0.5, 0.4, 0.3, 0.2, 0.05, 0.0, 0.99]
    retain = [0.2, 0.005, 0.0, 0.001, 0.0, 0.0, 0.009]
    return pd.DataFrame(
        {
            "latent": np.arange(7),
            "forget_freq": forget,
            "retain_freq": retain,
            "forget_mean": [1.0] * 7,
            "retain_mean": [0.5] * 7,
            "forget_max": [9.0] * 7,
            "retain_max": [3.0] * 7,
        }
    )


def hand_windows() -> pd.DataFrame:
    rows = [
        # latent 0: retain window maxima 5, 4, 3, 2, 1 of 10 windows; forget 10, 3, 2.5 of 4
        *[("retain", w, 0, v) for w, v in enumerate([5.0, 4.0, 3.0, 2.0, 1.0])],
        *[("forget", w, 0, v) for w, v in enumerate([10.0, 3.0, 2.5])],
        # latent 1: one retain window; forget 1, 2
        ("retain", 0, 1, 7.0),
        ("forget", 0, 1, 1.0),
        ("forget", 1, 1, 2.0),
    ]
    frame = pd.DataFrame(rows, columns=["corpus", "window", "latent", "value"])
    frame["n_windows"] = frame["corpus"].map({"forget": 4, "retain": 10})
    return frame
