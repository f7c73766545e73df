"""The part of an SAE the steering hook needs: k columns of W_enc, k rows of W_dec.

Decoding is linear, so only the latents a config names are encoded and decoded. A config
with `add` rows is one exception (the shifted input moves every latent: the hook slices all
of them); TopK SAEs are the other: whether a latent is active depends on all the others,
so their full pre-activations are computed to find the k-th largest. A TopK SAE with
`rescale_acts_by_decoder_norm` (sae-lens trains them so) encodes with pre-activations
times each decoder row's norm and decodes latents divided by it, as sae-lens does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sae_unlearn.errors import UserError

SUPPORTED_NORMALISATIONS = (
    "none",
    "expected_average_only_in",
    "constant_norm_rescale",
    "layer_norm",
)


class LatentSlice(nn.Module):
    """The part of an SAE the steering hook needs, for a fixed set of latents.

    Built from any sae-lens SAE (ReLU, JumpReLU, TopK/BatchTopK-as-JumpReLU); refuses the
    architectures whose latents cannot be computed this way.
    """

    def __init__(self, sae: nn.Module, latents: Sequence[int]):
        super().__init__()
        cfg = sae.cfg
        d_sae = int(cfg.d_sae)
        idx = torch.tensor(sorted(set(int(i) for i in latents)), dtype=torch.long)
        for i in idx.tolist():
            if not 0 <= i < d_sae:
                raise UserError(
                    f"latent {i} is out of range for an SAE with {d_sae} latents "
                    f"(valid: 0..{d_sae - 1})"
                )
        self.architecture = type(cfg).architecture() if hasattr(cfg, "architecture") else "standard"
        if self.architecture not in ("standard", "jumprelu", "topk"):
            raise UserError(
                f"SAE architecture {self.architecture!r} is not supported by the steering hook; "
                "use a ReLU, JumpReLU or TopK SAE"
            )
        norm = getattr(cfg, "normalize_activations", "none") or "none"
        if norm not in SUPPORTED_NORMALISATIONS:
            raise UserError(f"SAE normalize_activations={norm!r} is not supported by the hook")
        if getattr(cfg, "reshape_activations", "none") != "none":
            raise UserError("hook_z SAEs are not supported: the hook edits the residual stream")
        self.normalisation = "none" if norm == "expected_average_only_in" else norm
        self.d_in = int(cfg.d_in)
        self.d_sae = d_sae
        self.register_buffer("index", idx)
        self.position = {latent: j for j, latent in enumerate(idx.tolist())}
        b_dec = sae.b_dec.detach()
        apply_b_dec = bool(getattr(cfg, "apply_b_dec_to_input", True))
        self.register_buffer("b_dec_in", b_dec if apply_b_dec else torch.zeros_like(b_dec))
        self.register_buffer("b_dec", b_dec.clone())
        self.register_buffer("W_enc", sae.W_enc.detach()[:, idx].clone())
        self.register_buffer("b_enc", sae.b_enc.detach()[idx].clone())
        self.register_buffer("W_dec", sae.W_dec.detach()[idx].clone())
        threshold = getattr(sae, "threshold", None)
        self.register_buffer(
            "threshold",
            threshold.detach()[idx].clone() if threshold is not None else torch.zeros(len(idx)),
        )
        self.k = int(getattr(cfg, "k", 0) or 0)
        self.rescale = False
        if self.architecture == "topk":
            self.rescale = bool(getattr(cfg, "rescale_acts_by_decoder_norm", False))
            self.register_buffer("W_enc_full", sae.W_enc.detach().clone())
            self.register_buffer("b_enc_full", sae.b_enc.detach().clone())
            self.register_buffer("dec_norm_full", sae.W_dec.detach().norm(dim=-1))
            # sae-lens decodes `f * (1 / norm) @ W_dec`; the same factor, per sliced row
            self.register_buffer("dec_scale", (1 / self.dec_norm_full)[idx].clone())

    @property
    def encoded_columns(self) -> int:
        """Encoder columns one forward multiplies: every one for TopK, else the slice's."""
        return self.d_sae if self.architecture == "topk" else len(self.index)

    def normalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """SAE input normalisation, and the factor that maps decoder deltas back."""
        if self.normalisation == "constant_norm_rescale":
            coeff = (self.d_in**0.5) / x.norm(dim=-1, keepdim=True)
            return x * coeff, 1.0 / coeff
        if self.normalisation == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            std = (x - mu).std(dim=-1, keepdim=True)
            return (x - mu) / (std + 1e-5), std
        return x, 1.0

    def decode_delta(self, delta_f: torch.Tensor) -> torch.Tensor:
        """The residual change `[..., d_in]` of a change in the slice's latents (no b_dec:
        it cancels between the edited and unedited decodes)."""
        if self.architecture == "topk" and self.rescale:
            delta_f = delta_f * self.dec_scale.to(delta_f.dtype)
        return delta_f @ self.W_dec

    def reconstruct(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The SAE's output for latents `f` (every latent: a slice of all of them) of the
        input `x`, as sae-lens decodes: `f @ W_dec + b_dec`, mapped back through `x`'s own
        input normalisation (two inputs that differ get different factors)."""
        out = self.decode_delta(f) + self.b_dec
        if self.normalisation == "constant_norm_rescale":
            return out * (x.norm(dim=-1, keepdim=True) / self.d_in**0.5)
        if self.normalisation == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            return out * (x - mu).std(dim=-1, keepdim=True) + mu
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the slice's latents, `[..., len(index)]`, exactly as the SAE's."""
        sae_in = x - self.b_dec_in
        if self.architecture == "topk":
            full = sae_in @ self.W_enc_full + self.b_enc_full
            if self.rescale:
                full = full * self.dec_norm_full
            # Slice the full pre-activations (not a separate k-column matmul) so the
            # comparison with the k-th largest sees bit-identical values.
            pre = full[..., self.index]
            kth = full.topk(self.k, dim=-1).values[..., -1:]
            return torch.relu(pre) * (pre >= kth).to(pre.dtype)
        pre = sae_in @ self.W_enc + self.b_enc
        acts = torch.relu(pre)
        if self.architecture == "jumprelu":
            acts = acts * (pre > self.threshold).to(pre.dtype)
        return acts
