"""Conditional SAE latent clamping: clamp configs, the paper's steering CSV, and the hook.

The hook keeps the SAE error term: `h' = h + (f' - f) @ W_dec`, with `f` the SAE latents
of `h` and `f'` the edited ones. Decoding is linear, so only the latents a config names
(and the refusal latents) are encoded and decoded: k columns of `W_enc`, k rows of
`W_dec`. TopK SAEs are the exception: whether a latent is active depends on all the
others, so their full pre-activations are computed to find the k-th largest.

Steering CSV (the paper's format) `hook_action` semantics, conditions always read on the
unedited latents:
- `add`:           f_i += steering_coefficient at every position (plain steering)
- `clamp`:         where f_i > 0, f_i = clamp_value ("Clamp Prime", Farrell et al./SAEBench)
- `clamp_cond`:    where f_i > clamp_value (a threshold), f_i = steering_coefficient;
                   a threshold of -inf makes it an unconditional clamp
- `clamp_refusal`: where any `clamp_refusal` latent i with the same refuse_id has
                   f_i > clamp_value (a threshold), f_refuse_id = steering_coefficient
- `clamp_gated` (ours, the `gated_clamp` mode): a gate opens at the first position where
                   any `clamp_gated` latent i has f_i > clamp_value (its calibrated
                   threshold) and stays open for the rest of the sequence; where it is
                   open and f_i > 0, f_i = steering_coefficient. A precise detector (high
                   thresholds, calibrated so they rarely trip on the retain corpus) gates
                   a broad clamp (every firing), as conditional activation steering gates
                   a behaviour on a condition read from the prompt (Lee et al. 2024).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
import yaml
from torch import nn

from sae_unlearn.io import atomic_path, write_yaml
from sae_unlearn.models import check_layer, decoder_layers

ACTIONS = ("add", "clamp", "clamp_cond", "clamp_refusal", "clamp_gated")
MODES = ("clamp_prime", "refusal_clamp", "gated_clamp")
CSV_COLUMNS = [
    "latent_idx",
    "hook_action",
    "refuse_id",
    "clamp_value",
    "steering_coefficient",
    "sae_id",
    "sae_release",
    "description",
]
SUPPORTED_NORMALISATIONS = (
    "none",
    "expected_average_only_in",
    "constant_norm_rescale",
    "layer_norm",
)


@dataclass(frozen=True)
class SteeringRow:
    """One row of the paper's steering CSV."""

    latent_idx: int
    hook_action: str
    refuse_id: int | None = None
    clamp_value: float = 0.0
    steering_coefficient: float = 0.0
    sae_id: str = ""
    sae_release: str = ""
    description: str = ""


@dataclass
class ClampConfig:
    """What the steering hook does, at which layer. `rows` is the canonical form."""

    layer: int
    rows: list[SteeringRow]
    mode: str = "csv"
    meta: dict = field(default_factory=dict)

    @property
    def latents(self) -> list[int]:
        return [r.latent_idx for r in self.rows]

    def needed_latents(self) -> list[int]:
        """Every latent the hook must encode: the rows' and the refusal targets."""
        needed = {r.latent_idx for r in self.rows}
        needed.update(r.refuse_id for r in self.rows if r.hook_action == "clamp_refusal")
        return sorted(needed)


def clamp_prime(
    layer: int, latents: Sequence[int], value: float, sae_release: str = "", sae_id: str = ""
) -> ClampConfig:
    rows = [
        SteeringRow(int(i), "clamp", None, float(value), 0.0, sae_id, sae_release, "")
        for i in latents
    ]
    return ClampConfig(layer, rows, mode="clamp_prime", meta={"value": float(value)})


def refusal_clamp(
    layer: int,
    latents: Sequence[int],
    refusal_latent: int,
    threshold: float,
    value: float,
    sae_release: str = "",
    sae_id: str = "",
) -> ClampConfig:
    rows = [
        SteeringRow(
            int(i),
            "clamp_refusal",
            int(refusal_latent),
            float(threshold),
            float(value),
            sae_id,
            sae_release,
            "",
        )
        for i in latents
    ]
    meta = {"value": float(value), "threshold": float(threshold), "refusal_latent": refusal_latent}
    return ClampConfig(layer, rows, mode="refusal_clamp", meta=meta)


def gated_clamp(
    layer: int,
    latents: Sequence[int],
    thresholds: Sequence[float],
    value: float,
    sae_release: str = "",
    sae_id: str = "",
) -> ClampConfig:
    """Gated clamp: the selected latents, each with its calibrated gate threshold."""
    if len(thresholds) != len(latents):
        raise ValueError(
            f"gated_clamp needs one threshold per latent ({len(latents)} latents, "
            f"{len(thresholds)} thresholds)"
        )
    rows = [
        SteeringRow(int(i), "clamp_gated", None, float(t), float(value), sae_id, sae_release, "")
        for i, t in zip(latents, thresholds, strict=True)
    ]
    return ClampConfig(layer, rows, mode="gated_clamp", meta={"value": float(value)})


def validate_rows(rows: Sequence[SteeringRow], d_sae: int | None = None, source: str = "") -> None:
    where = f" in {source}" if source else ""
    if not rows:
        raise ValueError(f"the clamp config{where} names no latents; select at least one")
    for n, row in enumerate(rows):
        if row.hook_action not in ACTIONS:
            raise ValueError(
                f"row {n}{where}: hook_action={row.hook_action!r}; use one of {ACTIONS}"
            )
        if row.hook_action == "clamp_refusal" and row.refuse_id is None:
            raise ValueError(
                f"row {n}{where}: clamp_refusal needs a refuse_id (the refusal latent)"
            )
        if d_sae is not None:
            for name, idx in (("latent_idx", row.latent_idx), ("refuse_id", row.refuse_id)):
                if idx is not None and not 0 <= idx < d_sae:
                    raise ValueError(
                        f"row {n}{where}: {name}={idx} is out of range for an SAE with {d_sae} "
                        f"latents (valid: 0..{d_sae - 1}); check that the config matches the SAE"
                    )


# --- file formats -----------------------------------------------------------------------


def write_clamp_yaml(cfg: ClampConfig, path: str | Path) -> None:
    write_yaml(
        path,
        {
            "layer": cfg.layer,
            "mode": cfg.mode,
            "meta": cfg.meta,
            "rows": [asdict(r) for r in cfg.rows],
        },
    )


def read_clamp_yaml(path: str | Path) -> ClampConfig:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "rows" not in data or "layer" not in data:
        raise ValueError(f"{path} is not a clamp config (needs `layer` and `rows`)")
    rows = [SteeringRow(**row) for row in data["rows"]]
    validate_rows(rows, source=str(path))
    return ClampConfig(int(data["layer"]), rows, data.get("mode", "csv"), data.get("meta", {}))


def write_steering_csv(cfg: ClampConfig, path: str | Path) -> None:
    frame = pd.DataFrame([asdict(r) for r in cfg.rows], columns=CSV_COLUMNS)
    frame["refuse_id"] = frame["refuse_id"].astype("Int64")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _number(value) -> float:
    return 0.0 if pd.isna(value) else float(value)


def read_steering_csv(path: str | Path, layer: int) -> ClampConfig:
    """Import a steering CSV in the paper's format, as is."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks steering CSV columns {missing}; expected columns {CSV_COLUMNS}"
        )
    rows = []
    for n, rec in enumerate(frame.to_dict("records")):
        try:
            refuse = rec["refuse_id"]
            rows.append(
                SteeringRow(
                    latent_idx=int(rec["latent_idx"]),
                    hook_action=str(rec["hook_action"]).strip(),
                    refuse_id=None if pd.isna(refuse) else int(refuse),
                    clamp_value=float(rec["clamp_value"])
                    if not pd.isna(rec["clamp_value"])
                    else 0.0,
                    steering_coefficient=float(rec["steering_coefficient"])
                    if not pd.isna(rec["steering_coefficient"])
                    else 0.0,
                    sae_id="" if pd.isna(rec["sae_id"]) else str(rec["sae_id"]),
                    sae_release="" if pd.isna(rec["sae_release"]) else str(rec["sae_release"]),
                    description="" if pd.isna(rec["description"]) else str(rec["description"]),
                )
            )
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{path} row {n + 2}: {err}; numeric columns must hold numbers"
            ) from err
    validate_rows(rows, source=str(path))
    actions = {r.hook_action for r in rows}
    modes = {"clamp": "clamp_prime", "clamp_refusal": "refusal_clamp", "clamp_gated": "gated_clamp"}
    name = modes.get(next(iter(actions)), "csv") if len(actions) == 1 else "csv"
    return ClampConfig(layer, rows, mode=name, meta={"source_csv": str(path)})


# --- the hook -----------------------------------------------------------------------------


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
                raise ValueError(
                    f"latent {i} is out of range for an SAE with {d_sae} latents "
                    f"(valid: 0..{d_sae - 1})"
                )
        self.architecture = type(cfg).architecture() if hasattr(cfg, "architecture") else "standard"
        if self.architecture not in ("standard", "jumprelu", "topk"):
            raise ValueError(
                f"SAE architecture {self.architecture!r} is not supported by the steering hook; "
                "use a ReLU, JumpReLU or TopK SAE"
            )
        norm = getattr(cfg, "normalize_activations", "none") or "none"
        if norm not in SUPPORTED_NORMALISATIONS:
            raise ValueError(f"SAE normalize_activations={norm!r} is not supported by the hook")
        if getattr(cfg, "reshape_activations", "none") != "none":
            raise ValueError("hook_z SAEs are not supported: the hook edits the residual stream")
        self.normalisation = "none" if norm == "expected_average_only_in" else norm
        self.d_in = int(cfg.d_in)
        self.d_sae = d_sae
        self.register_buffer("index", idx)
        self.position = {latent: j for j, latent in enumerate(idx.tolist())}
        b_dec = sae.b_dec.detach()
        apply_b_dec = bool(getattr(cfg, "apply_b_dec_to_input", True))
        self.register_buffer("b_dec_in", b_dec if apply_b_dec else torch.zeros_like(b_dec))
        self.register_buffer("W_enc", sae.W_enc.detach()[:, idx].clone())
        self.register_buffer("b_enc", sae.b_enc.detach()[idx].clone())
        self.register_buffer("W_dec", sae.W_dec.detach()[idx].clone())
        threshold = getattr(sae, "threshold", None)
        self.register_buffer(
            "threshold",
            threshold.detach()[idx].clone() if threshold is not None else torch.zeros(len(idx)),
        )
        self.k = int(getattr(cfg, "k", 0) or 0)
        if self.architecture == "topk":
            self.rescale = bool(getattr(cfg, "rescale_acts_by_decoder_norm", False))
            self.register_buffer("W_enc_full", sae.W_enc.detach().clone())
            self.register_buffer("b_enc_full", sae.b_enc.detach().clone())
            self.register_buffer("dec_norm_full", sae.W_dec.detach().norm(dim=-1))

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


@dataclass
class GateLayout:
    """How the positions of the next forwards see each other, for gated clamps on inputs that
    are not whole causal sequences: a row packing several sequences as a prefix tree, or the
    part after a prefix held in a KV cache.

    `visible[q, k]`: position q attends to position k of the same forward (default: causal).
    `positions`: each position's index in its own sequence; index 0 (BOS) never opens the
    gate (default: 0..T-1). `carry`: the gate was already open at the end of the cached
    prefix, so it is open everywhere.
    """

    visible: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    carry: bool = False


def gate_open(
    f: torch.Tensor, thresholds: torch.Tensor, layout: GateLayout | None = None
) -> torch.Tensor:
    """Where the gate of `clamp_gated` rows is open: `[..., T]` for latents `[..., T, k]`.

    The gate opens at the first position where any gated latent exceeds its threshold and
    stays open for the rest of the sequence (the positions after it can attend to it).
    Position 0 never opens it: there sits BOS, the attention sink, whose activations are
    off the SAE's distribution and which latent statistics leave out as a special token.
    A 1-d input is one position with no history.
    """
    fire = (f > thresholds).any(dim=-1)
    if fire.dim() == 0:
        return fire | bool(layout and layout.carry)
    layout = layout or GateLayout()
    fire = fire.clone()
    if layout.positions is None:
        fire[..., 0] = False
    else:
        fire = fire & (layout.positions.to(fire.device) != 0)
    if layout.visible is None:
        gate = fire.cummax(dim=-1).values
    else:
        # Open where any visible position fired (its ancestors in a packed prefix tree).
        gate = (fire[..., None, :] & layout.visible.to(fire.device)).any(dim=-1)
    return gate | layout.carry


class ClampHook(nn.Module):
    """Applies a ClampConfig to residual activations; differentiable (no `no_grad`).

    Every action but `clamp_gated` acts position by position. `clamp_gated` rows read the
    sequence up to each position (`gate_open`), so inputs must be whole sequences
    `[batch, T, d]` starting at position 0, right-padded; `sequence_level` tells callers.
    """

    def __init__(self, sae: nn.Module, cfg: ClampConfig):
        super().__init__()
        validate_rows(cfg.rows, d_sae=int(sae.cfg.d_sae))
        self.cfg = cfg
        self.slice = LatentSlice(sae, cfg.needed_latents())
        pos = self.slice.position

        def gather(action: str) -> list[SteeringRow]:
            return [r for r in cfg.rows if r.hook_action == action]

        def tensor(values, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype)

        add = gather("add")
        self.register_buffer("add_pos", tensor([pos[r.latent_idx] for r in add], torch.long))
        self.register_buffer("add_val", tensor([r.steering_coefficient for r in add]))
        clamp = gather("clamp")
        self.register_buffer("clamp_pos", tensor([pos[r.latent_idx] for r in clamp], torch.long))
        self.register_buffer("clamp_val", tensor([r.clamp_value for r in clamp]))
        cond = gather("clamp_cond")
        self.register_buffer("cond_pos", tensor([pos[r.latent_idx] for r in cond], torch.long))
        self.register_buffer("cond_thr", tensor([r.clamp_value for r in cond]))
        self.register_buffer("cond_val", tensor([r.steering_coefficient for r in cond]))
        gated = gather("clamp_gated")
        self.register_buffer("gate_pos", tensor([pos[r.latent_idx] for r in gated], torch.long))
        self.register_buffer("gate_thr", tensor([r.clamp_value for r in gated]))
        self.register_buffer("gate_val", tensor([r.steering_coefficient for r in gated]))
        # A gate reads earlier positions, so callers must run whole sequences (no KV
        # cache, no packed rows); see `sequence_level`.
        self.sequence_level = bool(len(gated))
        self.layout: GateLayout | None = None  # set by `gate_layout`
        self.last_open: torch.Tensor | None = None  # gate at the last position, per row
        # refusal groups: one per (refuse_id, value)
        self.refusal_groups: list[tuple[int, float, list[int], list[float]]] = []
        for refuse_id in sorted({r.refuse_id for r in gather("clamp_refusal")}):
            members = [r for r in gather("clamp_refusal") if r.refuse_id == refuse_id]
            values = {r.steering_coefficient for r in members}
            if len(values) != 1:
                raise ValueError(
                    f"clamp_refusal rows for refuse_id {refuse_id} disagree on the value to set "
                    f"({sorted(values)}); give them one steering_coefficient"
                )
            self.refusal_groups.append(
                (
                    pos[refuse_id],
                    values.pop(),
                    [pos[r.latent_idx] for r in members],
                    [r.clamp_value for r in members],
                )
            )

    def edit(self, f: torch.Tensor) -> torch.Tensor:
        """The edited latents f' (same shape as f); conditions read the unedited f."""
        new = f.clone()
        dtype = f.dtype
        if len(self.clamp_pos):
            sel = f[..., self.clamp_pos]
            new[..., self.clamp_pos] = torch.where(sel > 0, self.clamp_val.to(dtype), sel)
        if len(self.cond_pos):
            sel = f[..., self.cond_pos]
            new[..., self.cond_pos] = torch.where(
                sel > self.cond_thr.to(dtype), self.cond_val.to(dtype), sel
            )
        if len(self.add_pos):
            new[..., self.add_pos] = new[..., self.add_pos] + self.add_val.to(dtype)
        if len(self.gate_pos):
            sel = f[..., self.gate_pos]
            gate = gate_open(sel, self.gate_thr.to(dtype), self.layout)
            self.last_open = gate[..., -1].detach() if gate.dim() else gate.detach()
            new[..., self.gate_pos] = torch.where(
                gate[..., None] & (sel > 0), self.gate_val.to(dtype), sel
            )
        for target, value, members, thresholds in self.refusal_groups:
            thr = torch.tensor(thresholds, dtype=dtype, device=f.device)
            fire = (f[..., members] > thr).any(dim=-1)
            new[..., target] = torch.where(
                fire, torch.full_like(new[..., target], value), new[..., target]
            )
        return new

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h.to(self.slice.W_enc.dtype)
        sae_in, out_scale = self.slice.normalise(x)
        f = self.slice.encode(sae_in)
        delta = ((self.edit(f) - f) @ self.slice.W_dec) * out_scale
        return h + delta.to(h.dtype)


@contextmanager
def steer(model: nn.Module, hook: ClampHook, layer: int | None = None) -> Iterator[ClampHook]:
    """Attach the clamp hook to the output of decoder block `layer` for the block's duration."""
    layer = hook.cfg.layer if layer is None else layer
    check_layer(model, layer, what="clamp layer")
    block = decoder_layers(model)[layer]
    device = next(model.parameters()).device
    hook.to(device)

    def forward_hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (hook(output[0]), *output[1:])
        return hook(output)

    handle = block.register_forward_hook(forward_hook)
    active = model.__dict__.setdefault(_ACTIVE_HOOKS, [])
    active.append(hook)
    try:
        yield hook
    finally:
        handle.remove()
        active.remove(hook)


_ACTIVE_HOOKS = "_sae_unlearn_active_hooks"


def _gated_hooks(model: nn.Module) -> list[ClampHook]:
    return [h for h in model.__dict__.get(_ACTIVE_HOOKS, []) if h.sequence_level]


def needs_whole_sequences(model: nn.Module) -> bool:
    """Whether a hook attached with `steer` reads earlier positions (`clamp_gated` rows):
    then every forward must run whole right-padded sequences from position 0, or declare
    how its positions see each other with `gate_layout`."""
    return bool(_gated_hooks(model))


@contextmanager
def gate_layout(model: nn.Module, layout: GateLayout) -> Iterator[list[ClampHook]]:
    """Forwards inside see `layout` in every gated hook attached to `model`."""
    hooks = _gated_hooks(model)
    for hook in hooks:
        hook.layout, hook.last_open = layout, None
    try:
        yield hooks
    finally:
        for hook in hooks:
            hook.layout = None


def gate_opened(hooks: Sequence[ClampHook]) -> bool:
    """Whether any hook's gate was open at the last position of its last forward."""
    return any(h.last_open is not None and bool(h.last_open.any()) for h in hooks)


def reference_steer(sae: nn.Module, cfg: ClampConfig, h: torch.Tensor) -> torch.Tensor:
    """Full encode -> edit -> decode + error, with sae-lens' own encode/decode (for tests)."""
    f = sae.encode(h)
    edited = f.clone()
    hook = ClampHook(sae, cfg)
    needed = torch.tensor(cfg.needed_latents())
    edited[..., needed] = hook.edit(f[..., needed])
    error = h - sae.decode(f)
    return sae.decode(edited) + error
