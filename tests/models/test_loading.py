"""Model loading: dtypes by name, only safetensors checkpoints, and the saved tokenizer."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from sae_unlearn.models.loading import load_model, resolve_dtype, save_tokenizer
from tests.tiny import tiny_tokenizer


def test_resolve_dtype():
    assert resolve_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="model.dtype='int8'"):
        resolve_dtype("int8")


def test_local_dir_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        load_model(str(tmp_path))


def _tokenizer_json_reads(monkeypatch, model_dir) -> tuple[object, int]:
    """Load the tokenizer of `model_dir`, counting how often tokenizer.json is parsed."""
    reads = []
    original = json.load

    def counting_load(handle, *args, **kwargs):
        if str(getattr(handle, "name", "")).endswith("tokenizer.json"):
            reads.append(handle.name)
        return original(handle, *args, **kwargs)

    monkeypatch.setattr(json, "load", counting_load)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    monkeypatch.setattr(json, "load", original)
    return tokenizer, len(reads)


def test_saved_tokenizer_lists_its_added_tokens_and_loads_with_one_parse(tmp_path, monkeypatch):
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens(["<extra_token>"])
    tokenizer.save_pretrained(tmp_path / "plain")
    save_tokenizer(tokenizer, tmp_path / "listed")

    config = json.loads((tmp_path / "listed" / "tokenizer_config.json").read_text())
    listed = config["added_tokens_decoder"]
    assert {int(i): t["content"] for i, t in listed.items()} == {
        i: t.content for i, t in tokenizer.added_tokens_decoder.items()
    }
    assert listed[str(len(tokenizer) - 1)] == {
        "content": "<extra_token>",
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": True,
        "special": False,
    }

    plain, plain_reads = _tokenizer_json_reads(monkeypatch, tmp_path / "plain")
    loaded, listed_reads = _tokenizer_json_reads(monkeypatch, tmp_path / "listed")
    # one parse fewer (here 1 -> 0; Gemma's own tokenizer class parses it once more, 2 -> 1)
    assert plain_reads - listed_reads == 1
    text = "<bos>Question: the <extra_token> capital of France?<eos><pad>"
    assert loaded(text)["input_ids"] == plain(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.added_tokens_decoder == plain.added_tokens_decoder
    assert loaded.all_special_ids == plain.all_special_ids
    assert (loaded.padding_side, loaded.pad_token_id) == (plain.padding_side, plain.pad_token_id)
