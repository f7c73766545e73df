"""An SAE trained and evaluated on a cache larger than memory (`sae.train.memory_tokens`).

The in-memory path (`train.train_sae`) holds every cached token of the layer at once: fine
for the embedded default (210k tokens, 0.5 GB), not for gemma-2-2b at 100M tokens (0.9 TB).
Here the shards' row groups are read in a seeded random order each epoch and pass through a
shuffle buffer of `memory_tokens` tokens, which is sae-lens' data provider; the held-out
sequences are chosen from the token columns alone, exactly as the in-memory split chooses
them, and the evaluation streams them twice (mean, then errors). Memory then holds the buffer,
one row group and the SAE, whatever the cache's size. sae-lens' own `ActivationsStore` mixes
through a buffer the same way but runs the model itself; it cannot read a cache of shards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from sae_unlearn.activations.read import (
    cache_metadata,
    group_tokens,
    non_special,
    row_group_fragments,
    row_groups,
)
from sae_unlearn.saes.config import SAETrainConfig
from sae_unlearn.saes.quality import held_out_sequences
from sae_unlearn.saes.train import CALIBRATION_TOKENS, TrainingData, fit_sae


@dataclass(frozen=True)
class CorpusSplit:
    """One corpus cache and the sequence ids its held-out split keeps out of training."""

    path: Path
    held_out: torch.Tensor


def split_sequences(paths: Sequence[Path], fraction: float, seed: int) -> list[CorpusSplit]:
    """The held-out sequences of each corpus: the same draw as `quality.split_held_out`
    makes over the loaded activations (per corpus, `seed + i`), from the distinct sequence
    ids of its non-special tokens, gathered row group by row group (two small columns)."""
    splits = []
    for i, path in enumerate(paths):
        per_group = [torch.empty(0, dtype=torch.int32)]
        for table in row_groups(path, ["sequence_id", "is_special"]):
            sequences = torch.from_numpy(table.column("sequence_id").to_numpy().copy())
            per_group.append(torch.unique(sequences[non_special(table)]))
        distinct = torch.unique(torch.cat(per_group))
        splits.append(CorpusSplit(Path(path), held_out_sequences(distinct, fraction, seed + i)))
    return splits


class CacheStream:
    """The non-special tokens of one layer over several corpus caches, read row group by
    row group: either side of the held-out split, in order or shuffled through a buffer."""

    def __init__(self, splits: Sequence[CorpusSplit], layer: int) -> None:
        self.layer = layer
        self.units = []
        for split in splits:
            dtype = cache_metadata(split.path)["dtype"]
            self.units += [(split, group, dtype) for group in row_group_fragments(split.path)]
        # Nothing held out anywhere: the evaluation falls back to the training tokens.
        self.has_held_out = any(len(split.held_out) for split in splits)

    def _side(self, unit: tuple, held_out: bool) -> torch.Tensor:
        split, group, dtype = unit
        acts, sequences = group_tokens(group, self.layer, dtype)
        if not self.has_held_out:
            return acts
        return acts[torch.isin(sequences, split.held_out) == held_out]

    def in_order(self, held_out: bool = False) -> Iterator[torch.Tensor]:
        """Each row group's tokens of one side, in cache order (for sums and evaluation)."""
        for unit in self.units:
            acts = self._side(unit, held_out)
            if len(acts):
                yield acts

    def count_and_mean(self) -> tuple[int, torch.Tensor]:
        """Training tokens, and their mean in float64 (the decoder bias's start)."""
        n, total = 0, None
        for acts in self.in_order():
            batch_sum = acts.double().sum(0)
            total = batch_sum if total is None else total + batch_sum
            n += len(acts)
        if total is None:
            raise ValueError("the caches hold no training tokens")
        return n, total / n

    def shuffled(self, batch_size: int, seed: int, memory_tokens: int) -> Iterator[torch.Tensor]:
        """Endless seeded epochs of training batches: row groups in a new random order each
        epoch, mixed in a buffer of `memory_tokens` tokens that gives out half of itself
        (shuffled) whenever it fills; at each epoch's end it gives out every full batch, so an
        epoch yields each training token once (a remainder under one batch carries over)."""
        generator = torch.Generator().manual_seed(seed)
        buffer: list[torch.Tensor] = []
        held = 0
        while True:
            for index in torch.randperm(len(self.units), generator=generator).tolist():
                acts = self._side(self.units[index], held_out=False)
                buffer.append(acts)
                held += len(acts)
                if held >= memory_tokens:
                    batches, buffer = _give_out(buffer, batch_size, held // 2, generator)
                    held = sum(len(a) for a in buffer)
                    yield from batches
            batches, buffer = _give_out(buffer, batch_size, held, generator)
            held = sum(len(a) for a in buffer)
            yield from batches


def _give_out(
    buffer: list[torch.Tensor], batch_size: int, n_out: int, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Shuffle the buffer; the first whole batches within `n_out` tokens go out, the rest
    stays in."""
    tokens = torch.cat(buffer)
    tokens = tokens[torch.randperm(len(tokens), generator=generator)]
    n_batches = n_out // batch_size
    batches = list(tokens[: n_batches * batch_size].split(batch_size))
    return batches, [tokens[n_batches * batch_size :]]


def first_tokens(batches: Iterator[torch.Tensor], n_tokens: int) -> torch.Tensor:
    """The first whole batches of a stream holding at least `n_tokens` tokens (an endless
    stream repeats its epochs, so a small cache gives repeated tokens)."""
    taken, total = [], 0
    for batch in batches:
        taken.append(batch)
        total += len(batch)
        if total >= n_tokens:
            break
    return torch.cat(taken)


def train_sae_streamed(
    stream: CacheStream,
    cfg: SAETrainConfig,
    device: str = "cpu",
    metadata: dict[str, Any] | None = None,
) -> tuple[SAE, int]:
    """`fit_sae` on the stream's training tokens through a `cfg.memory_tokens` buffer, and
    the number of training tokens (one pass counts them and takes their mean first)."""
    n, mean = stream.count_and_mean()
    batch_size = min(cfg.batch_size, n)
    # Another seed than the training batches', as the in-memory path samples its own.
    calibration = first_tokens(
        stream.shuffled(batch_size, cfg.seed + 1, cfg.memory_tokens), CALIBRATION_TOKENS
    )
    provider = stream.shuffled(batch_size, cfg.seed, cfg.memory_tokens)
    data = TrainingData(provider=provider, n_tokens=n, mean=mean, calibration=calibration)
    return fit_sae(data, cfg, device, metadata), n
