"""Conditional SAE latent clamping: clamp configs, the paper's steering CSV, and the hook."""

from sae_unlearn.steering.attach import (
    attached_hooks,
    gate_carry,
    gate_layout,
    gate_opened,
    needs_whole_sequences,
    steer,
)
from sae_unlearn.steering.formats import (
    read_clamp_yaml,
    read_steering_csv,
    write_clamp_yaml,
    write_steering_csv,
)
from sae_unlearn.steering.gate import GateLayout, gate_open
from sae_unlearn.steering.hook import ClampHook
from sae_unlearn.steering.latent_slice import LatentSlice
from sae_unlearn.steering.modes import clamp_prime, from_selection, gated_clamp, refusal_clamp
from sae_unlearn.steering.positions import Prefix
from sae_unlearn.steering.rows import (
    ACTIONS,
    CSV_COLUMNS,
    CSV_REQUIRED,
    GATES,
    MODES,
    ClampConfig,
    Gate,
    SteeringRow,
    validate_rows,
)

__all__ = [
    "ACTIONS",
    "CSV_COLUMNS",
    "CSV_REQUIRED",
    "GATES",
    "MODES",
    "ClampConfig",
    "ClampHook",
    "Gate",
    "GateLayout",
    "LatentSlice",
    "Prefix",
    "SteeringRow",
    "attached_hooks",
    "clamp_prime",
    "from_selection",
    "gate_carry",
    "gate_layout",
    "gate_open",
    "gate_opened",
    "gated_clamp",
    "needs_whole_sequences",
    "read_clamp_yaml",
    "read_steering_csv",
    "refusal_clamp",
    "steer",
    "validate_rows",
    "write_clamp_yaml",
    "write_steering_csv",
]
