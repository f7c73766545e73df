"""Language models: loading and saving (`loading`), decoder blocks (`layers`), and recording
the residual stream after chosen blocks (`capture`)."""

from sae_unlearn.models.capture import capture_residuals, run_to_layers
from sae_unlearn.models.layers import (
    check_layer,
    decoder_layers,
    decoder_stack,
    hidden_size,
    layer_output,
    num_layers,
    resid_hook_name,
)
from sae_unlearn.models.loading import (
    DTYPES,
    EMBEDDED,
    ModelConfig,
    load_model,
    prepare_model,
    resolve_device,
    resolve_dtype,
)

__all__ = [
    "DTYPES",
    "EMBEDDED",
    "ModelConfig",
    "capture_residuals",
    "check_layer",
    "decoder_layers",
    "decoder_stack",
    "hidden_size",
    "layer_output",
    "load_model",
    "num_layers",
    "prepare_model",
    "resid_hook_name",
    "resolve_device",
    "resolve_dtype",
    "run_to_layers",
]
