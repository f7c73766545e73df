"""The paper's loaders, unpatched, on the offline hub cache of tests/paper/hub.py: sae-lens'
`SAE.from_pretrained` for Gemma Scope and Gemma Scope 2, the hub question sets and corpus
through `datasets.load_dataset`, and the models through transformers, all with
`HF_HUB_OFFLINE=1` as a user without network has it."""

from __future__ import annotations

import subprocess
import sys

import requests
import torch
from sae_lens import JumpReLUSAE

from sae_unlearn.data.sources import (
    MMLU_BIO_SUBJECTS,
    PAPER_MMLU_SUBJECTS,
    load_corpus,
    load_questions,
)
from sae_unlearn.models import load_model
from sae_unlearn.models.layers import decoder_layers
from sae_unlearn.saes.config import SAESourceConfig
from sae_unlearn.saes.io import load_sae
from tests.paper import hub
from tests.paper.conftest import GEMMA2, GEMMA3, offline_env

GEMMA_SCOPE = SAESourceConfig(
    source="pretrained",
    release="gemma-scope-2b-pt-res-canonical",
    sae_id="layer_7/width_16k/canonical",
)
GEMMA_SCOPE_2 = SAESourceConfig(
    source="pretrained", release="gemma-scope-2-270m-pt-res", sae_id="layer_9_width_16k_l0_medium"
)


def no_http(monkeypatch):
    """Any HTTP request through `requests` (sae-lens' own range requests) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"an HTTP request was made: {args[1:3]}")

    monkeypatch.setattr(requests.Session, "request", refuse)


def check_jumprelu(sae, d_in: int, layer: int, seed: int) -> None:
    assert isinstance(sae, JumpReLUSAE)
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (d_in, hub.D_SAE)
    assert sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_post"
    # the JumpReLU thresholds are the file's: positive exactly at the latents with weights
    assert torch.nonzero(sae.threshold).flatten().tolist() == hub.live_latents(seed)
    assert sae.W_enc.shape == (d_in, hub.D_SAE) and sae.W_dec.shape == (hub.D_SAE, d_in)
    assert sae.W_enc.dtype == torch.float32


def test_gemma_scope_canonical_loads_from_the_cache(offline_hub, monkeypatch):
    no_http(monkeypatch)
    sae = load_sae(GEMMA_SCOPE)
    check_jumprelu(sae, 2304, 7, seed=0)
    expected = hub.sae_arrays(2304)
    assert torch.equal(sae.threshold.detach(), torch.from_numpy(expected["threshold"]))
    assert torch.equal(sae.W_dec.detach(), torch.from_numpy(expected["W_dec"]))
    assert sae.cfg.metadata["sae_lens_release"] == GEMMA_SCOPE.release
    assert sae.cfg.metadata["sae_lens_id"] == GEMMA_SCOPE.sae_id


def test_gemma_scope_2_loads_without_its_range_request(offline_hub, monkeypatch):
    """sae-lens reads Gemma Scope 2's shapes with HTTP range requests; load_sae reads the
    cached file's header instead, so no request is made."""
    no_http(monkeypatch)
    sae = load_sae(GEMMA_SCOPE_2)
    check_jumprelu(sae, 640, 9, seed=1)
    from sae_lens.loading import pretrained_sae_loaders

    # the loader's own function is back in place after the call
    assert pretrained_sae_loaders.get_safetensors_tensor_shapes.__module__ == (
        pretrained_sae_loaders.__name__
    )


def test_gemma_scope_2_loads_when_the_hub_cannot_be_reached(hub_home):
    """HF_HUB_OFFLINE unset and no hub to reach (HF_ENDPOINT at a closed local port, which
    holds on a machine with network too): `hf_hub_download` falls back to the cache, and the
    range request sae-lens would make is not made. A subprocess: the endpoint is read at
    import."""
    env = {**offline_env(hub_home), "HF_ENDPOINT": "http://127.0.0.1:9"}
    del env["HF_HUB_OFFLINE"], env["HF_DATASETS_OFFLINE"]
    code = (
        "from sae_unlearn.saes.io import load_sae\n"
        "from tests.paper.test_loaders import GEMMA_SCOPE_2\n"
        "sae = load_sae(GEMMA_SCOPE_2)\n"
        "print(sae.cfg.d_in, sae.cfg.metadata.hook_name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["640", "blocks.9.hook_resid_post"]


def test_hub_question_sets_and_wikitext_load_from_the_cache(offline_hub):
    wmdp = load_questions("wmdp-bio")
    assert len(wmdp) == 8 and set(wmdp["subject"]) == {"wmdp_bio"}
    assert wmdp["choices"].map(len).eq(4).all()
    mmlu = load_questions("mmlu", "retain")
    assert len(mmlu) == 24 and set(mmlu["subject"]) == set(PAPER_MMLU_SUBJECTS)
    near = load_questions("mmlu-bio", "retain_near")
    assert len(near) == 12 and set(near["subject"]) == set(MMLU_BIO_SUBJECTS)
    wiki = load_corpus("wikitext", "retain")
    assert len(wiki) == 4 and wiki["text"].str.contains("= = History = =").all()


def test_gemma_2_2b_and_gemma_3_270m_load_from_the_cache(offline_hub):
    for name, arch, hidden, layers in ((GEMMA2, "Gemma2", 2304, 8), (GEMMA3, "Gemma3", 640, 10)):
        model, tokenizer = load_model(name, device="cpu")
        assert type(model).__name__ == f"{arch}ForCausalLM"
        assert model.config.hidden_size == hidden and len(decoder_layers(model)) == layers
        assert tokenizer("Viruses replicate")["input_ids"][0] == tokenizer.bos_token_id
