"""sae-unlearn: unlearning by conditional SAE latent clamping.

The library knows nothing about DVC or params.yaml: every entry point takes typed
configs and paths, so it can be used from notebooks and tests as well as from the
`pipeline/` stage commands.
"""

__version__ = "0.1.0"
