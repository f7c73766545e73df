"""Tiny randomly initialised models and tokenizers for fast offline tests."""

from __future__ import annotations

from pathlib import Path

import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
)

# Same special-token ids as Gemma: <pad>=0, <eos>=1, <bos>=2, <unk>=3.
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
TRAINING_TEXT = [
    "Viruses replicate inside host cells and bacteria divide by binary fission.",
    "Antibodies made by B cells bind antigens; T cells kill infected cells.",
    "Paris is the capital of France and the Nile is the longest river in Africa.",
    "A compiler translates source code; a sorting algorithm orders a list.",
    "Question: What is the capital of France?\nAnswer: Paris",
    "The mitochondria make energy. Mosquitoes spread malaria. Vaccines train immunity.",
    "Newton described gravity; Shakespeare wrote Hamlet; Mozart composed symphonies.",
    "I'm sorry, but I can't help with that. The weather is nice today.",
]


def tiny_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _tiny_config(vocab_size: int, hidden: int, n_layers: int) -> dict:
    """Settings shared by the tiny Gemma 2 and Gemma 3 models (Gemma's special-token ids)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )


def tiny_gemma3(vocab_size: int, hidden: int = 32, n_layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = Gemma3TextConfig(**_tiny_config(vocab_size, hidden, n_layers))
    return Gemma3ForCausalLM(config).eval()


def tiny_gemma2(vocab_size: int, hidden: int = 32, n_layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return Gemma2ForCausalLM(Gemma2Config(**_tiny_config(vocab_size, hidden, n_layers))).eval()


def save_tiny_model(out_dir: str | Path, arch: str = "gemma3", n_layers: int = 2, seed: int = 0):
    """A tiny model directory in the same format prepare-model writes (safetensors + tokenizer)."""
    tokenizer = tiny_tokenizer()
    build = tiny_gemma3 if arch == "gemma3" else tiny_gemma2
    model = build(len(tokenizer), n_layers=n_layers, seed=seed)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


D_IN, D_SAE = 32, 64


def random_sae(kind: str, seed: int = 0):
    """A random sae-lens SAE: `jumprelu`, `standard`, `topk`, or `topk_rescaled` (a TopK SAE
    with `rescale_acts_by_decoder_norm`, its decoder rows of norms 0.2-3)."""
    torch.manual_seed(seed)
    if kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE))
    elif kind in ("topk", "topk_rescaled"):
        rescale = kind == "topk_rescaled"
        sae = TopKSAE(
            TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=8, rescale_acts_by_decoder_norm=rescale)
        )
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.normal_(0, 0.3)
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.1)
        if kind == "jumprelu":
            sae.threshold.uniform_(0.0, 0.5)  # Gemma Scope style: per-latent thresholds
        if kind == "topk_rescaled":
            sae.W_dec.mul_(
                torch.empty(D_SAE, 1).uniform_(0.2, 3.0) / sae.W_dec.norm(dim=-1)[:, None]
            )
    return sae.eval()


def firing_latents(sae, h, n):
    rate = (sae.encode(h) > 0).float().mean(dim=(0, 1))
    return rate.argsort(descending=True)[:n].tolist()
