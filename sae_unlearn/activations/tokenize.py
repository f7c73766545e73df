"""Corpus tokenisation for caching: packed fixed-length sequences and the special tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from sae_unlearn.errors import UserError


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    ids.update(tokenizer.all_special_ids)
    return sorted(i for i in ids if i is not None)


def tokenize_corpus(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    seq_len: int,
    max_tokens: int,
) -> torch.Tensor:
    """Pack documents into `[n, seq_len]` sequences, each starting with BOS (`pack_sequences`)."""
    documents = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts)
    return pack_sequences(
        documents, tokenizer.bos_token_id, tokenizer.eos_token_id, seq_len, max_tokens
    )


def pack_sequences(
    documents: Iterable[Sequence[int]],
    bos: int | None,
    eos: int | None,
    seq_len: int,
    max_tokens: int,
) -> torch.Tensor:
    """Pack tokenised documents, in order, into `[n, seq_len]` sequences starting with BOS.

    Documents are joined with EOS between them (as in sae-lens' token packing) so a
    sequence never mixes two documents without a boundary marker. The last partial
    sequence is dropped rather than padded, so every cached token saw real context.
    Both engines pack here (the Ray one after tokenising in parallel), so they cache the
    same sequences.
    """
    body = seq_len - 1 if bos is not None else seq_len
    n_max = max_tokens // seq_len
    stream: list[int] = []
    for ids in documents:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
        if len(stream) >= n_max * body:
            break
    n = min(len(stream) // body, n_max)
    if n == 0:
        raise UserError(
            f"the corpus has {len(stream)} tokens, fewer than one sequence of "
            f"cache.seq_len={seq_len}; add text or lower cache.seq_len"
        )
    chunks = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    if bos is not None:
        chunks = torch.cat([torch.full((n, 1), bos, dtype=torch.long), chunks], dim=1)
    return chunks
