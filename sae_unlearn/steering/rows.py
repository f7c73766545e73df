"""Steering rows (the paper's steering CSV, one row per latent edit) and clamp configs.

`hook_action` semantics, as the authors' `InterventionModel` gives them (Khoriaty et al.
2025; conditions read the latents before any edit):
- `add`:           adds steering_coefficient * W_dec[i] to the SAE's *input*; the latents
                   are encoded from that shifted input and the error term from the clean
                   one, so the direction passes through the encoder (see `hook.py`)
- `clamp`:         where f_i > 0, f_i = steering_coefficient ("Clamp Prime")
- `clamp_cond`:    where f_i > clamp_value (a threshold), f_i = steering_coefficient;
                   a threshold of -inf makes it an unconditional clamp
- `clamp_refusal`: where any `clamp_refusal` latent i with the same refuse_id has
                   f_i > clamp_value (a threshold), f_refuse_id = steering_coefficient
- `clamp_gated` (ours, the `gated_clamp` mode; clamp_value = threshold, steering_coefficient
                   = value): a gate opens at the first position where any `clamp_gated`
                   latent i has f_i > clamp_value (its calibrated threshold) and stays open
                   for the rest of the sequence; where it is open and f_i > 0,
                   f_i = steering_coefficient (see `gate.py`). That is the `latched` gate;
                   the config's `Gate` may instead be a `window` (open while a trigger lies
                   within the last `window` tokens) or a `token_share` gate (open where the
                   share of trigger positions so far exceeds `tau`; clamps only at trigger
                   positions).
`clamp_value` is only ever a threshold, and `refuse_id` means something only to
`clamp_refusal`. No action edits or reads BOS (each row's first real token) or pads (see
`hook.py`); the authors' hooks act there too. One latent is edited by at most one row; the
`clamp_refusal` rows of one refuse_id are one edit, and `add` rows (which shift the input,
not a latent) may name any latent, as often as they like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sae_unlearn.choices import CLAMP_MODES, GATES
from sae_unlearn.errors import UserError

ACTIONS = ("add", "clamp", "clamp_cond", "clamp_refusal", "clamp_gated")
MODES = CLAMP_MODES
# Every column of the authors' steering CSV, in the order of their Refusal-clamp file.
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
# The columns their reader indexes unconditionally; the others may be absent (no
# `hook_action`: add; `refuse_id` and `clamp_value` only where an action reads them).
CSV_REQUIRED = ["latent_idx", "steering_coefficient", "sae_id", "sae_release"]
# The actions that read `clamp_value` as a threshold.
THRESHOLD_ACTIONS = ("clamp_cond", "clamp_refusal", "clamp_gated")


@dataclass(frozen=True)
class SteeringRow:
    """One row of the paper's steering CSV (defaults: what an absent column means)."""

    latent_idx: int
    hook_action: str
    refuse_id: int | None = None
    clamp_value: float = 0.0
    steering_coefficient: float = 0.0
    sae_id: str = ""
    sae_release: str = ""
    description: str = ""


@dataclass(frozen=True)
class Gate:
    """The gate of `clamp_gated` rows (see `gate.py`).

    `latched`: open from the first trigger to the end of the sequence. `window`: open while
    a trigger lies within the last `window` tokens. `token_share` (Dynamic SAE Guardrails):
    open where the share of trigger positions so far exceeds `tau`, clamping only there.
    """

    kind: str = "latched"
    window: int | None = None
    tau: float | None = None

    def check(self, source: str = "") -> None:
        """Refuse a gate the hook cannot run, naming the fix."""
        where = f" in {source}" if source else ""
        if self.kind not in GATES:
            raise UserError(f"gate kind {self.kind!r}{where}; use one of {list(GATES)}")
        if self.kind == "window" and (self.window is None or int(self.window) < 1):
            raise UserError(
                f"the window gate{where} needs a window of at least 1 token "
                f"(clamp.gate_window), got {self.window!r}"
            )
        if self.kind == "token_share":
            if self.tau is None:
                raise UserError(
                    f"the token_share gate{where} needs tau (calibrate it with "
                    "`sae-unlearn clamp-config`, or set it in the clamp config)"
                )
            if not 0.0 <= float(self.tau) < 1.0:
                raise UserError(
                    f"the token_share gate{where} needs 0 <= tau < 1, got tau={self.tau!r}"
                )

    def as_dict(self) -> dict:
        """The YAML form: the kind, and only the parameters it uses."""
        out: dict = {"kind": self.kind}
        if self.kind == "window":
            out["window"] = int(self.window)
        if self.kind == "token_share":
            out["tau"] = float(self.tau)
        return out

    @classmethod
    def from_dict(cls, data: dict | None, source: str = "") -> Gate:
        """Read `as_dict`'s form (None: the latched gate, as in configs written before gates)."""
        if data is None:
            return cls()
        if not isinstance(data, dict) or set(data) - {"kind", "window", "tau"}:
            raise UserError(
                f"gate {data!r} in {source or 'the clamp config'}: expected a mapping with "
                "`kind` and optionally `window` or `tau`"
            )
        gate = cls(str(data.get("kind", "latched")), data.get("window"), data.get("tau"))
        gate.check(source)
        return gate


@dataclass
class ClampConfig:
    """What the steering hook does, at which layer. `rows` is the canonical form; `gate`
    is how `clamp_gated` rows open (other rows ignore it)."""

    layer: int
    rows: list[SteeringRow]
    mode: str = "csv"
    meta: dict = field(default_factory=dict)
    gate: Gate = field(default_factory=Gate)
    # The SAE the config was made for (`saes.identity.sae_identity`); empty when unknown.
    sae: dict = field(default_factory=dict)

    @property
    def latents(self) -> list[int]:
        return [r.latent_idx for r in self.rows]

    def needed_latents(self) -> list[int]:
        """Every latent the hook must encode: the rows' and the refusal targets."""
        needed = {r.latent_idx for r in self.rows}
        needed.update(r.refuse_id for r in self.rows if r.hook_action == "clamp_refusal")
        return sorted(needed)


def validate_rows(rows: Sequence[SteeringRow], d_sae: int | None = None, source: str = "") -> None:
    where = f" in {source}" if source else ""
    if not rows:
        raise UserError(f"the clamp config{where} names no latents; select at least one")
    for n, row in enumerate(rows):
        if row.hook_action not in ACTIONS:
            raise UserError(
                f"row {n}{where}: hook_action={row.hook_action!r}; use one of {ACTIONS}"
            )
        if row.hook_action == "clamp_refusal" and row.refuse_id is None:
            raise UserError(f"row {n}{where}: clamp_refusal needs a refuse_id (the refusal latent)")
        if d_sae is not None:
            for name, idx in (("latent_idx", row.latent_idx), ("refuse_id", row.refuse_id)):
                if idx is not None and not 0 <= idx < d_sae:
                    raise UserError(
                        f"row {n}{where}: {name}={idx} is out of range for an SAE with {d_sae} "
                        f"latents (valid: 0..{d_sae - 1}); check that the config matches the SAE"
                    )
    _check_one_edit_per_latent(rows, where)


def _check_one_edit_per_latent(rows: Sequence[SteeringRow], where: str) -> None:
    """Two rows editing one latent would leave only the later edit (the hook applies them in
    a fixed order), so refuse them. `clamp_refusal` rows edit their `refuse_id`; the rows of
    one refusal group share it by design (each is one trigger of the same edit). `add` rows
    shift the SAE input and edit no latent: their shifts sum, as in the authors' hooks."""
    first: dict[int, tuple[int, str]] = {}
    for n, row in enumerate(rows):
        if row.hook_action == "add":
            continue
        target = row.refuse_id if row.hook_action == "clamp_refusal" else row.latent_idx
        if target in first:
            m, action = first[target]
            if action == row.hook_action == "clamp_refusal":
                continue
            raise UserError(
                f"rows {m} and {n}{where} both edit latent {target} ({action}, "
                f"{row.hook_action}); keep one row per edited latent"
            )
        first[target] = (n, row.hook_action)
