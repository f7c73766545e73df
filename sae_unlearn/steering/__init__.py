"""Conditional SAE latent clamping: clamp configs, the paper's steering CSV, and the hook.

Names load on first use (lazy_loader, scientific Python's SPEC 1): clamp-config writes configs
with `rows`, `modes` and `formats` alone, which need no torch; importing the hook's modules
eagerly cost that stage's process about 5 s of its 6.7 (torch, transformers and sae-lens).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "attach": [
            "attached_hooks",
            "gate_carry",
            "gate_layout",
            "gate_opened",
            "needs_whole_sequences",
            "steer",
        ],
        "formats": [
            "read_clamp_yaml",
            "read_steering_csv",
            "write_clamp_yaml",
            "write_steering_csv",
        ],
        "gate": ["GateLayout", "gate_open"],
        "hook": ["ClampHook"],
        "latent_slice": ["LatentSlice"],
        "modes": ["clamp_prime", "from_selection", "gated_clamp", "refusal_clamp"],
        "positions": ["Prefix"],
        "rows": [
            "ACTIONS",
            "CSV_COLUMNS",
            "CSV_REQUIRED",
            "GATES",
            "MODES",
            "ClampConfig",
            "Gate",
            "SteeringRow",
            "validate_rows",
        ],
    },
)
