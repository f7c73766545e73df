"""`make bench`, train-sae's memory: the peak RSS of a fresh process that trains an SAE on
N and then 2N cached tokens (the forget cache, then forget + retain), once in memory and
once streamed through a shuffle buffer (`sae.train.memory_tokens`). A short run (10 steps):
memory, not the SAE, is measured; the evaluation on the held-out tokens is included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from benchmarks.processes import peak_rss_mb

STREAM_BUFFER = 16_384  # tokens: well under N, so the streamed run never holds a corpus


def train_peak_memory_mb(paths: list[Path], layer: int, memory_tokens: int) -> float:
    """Peak RSS (MB) of a fresh process running train-sae's training and evaluation."""
    code = (
        "from pathlib import Path\n"
        "from sae_unlearn.saes.config import SAETrainConfig\n"
        "from sae_unlearn.saes.from_cache import layer_sae_metrics, train_on_cache\n"
        f"paths = [Path(p) for p in {[str(p) for p in paths]!r}]\n"
        "cfg = SAETrainConfig(architecture='batchtopk', training_tokens=10_240, "
        f"memory_tokens={memory_tokens})\n"
        f"layer_sae_metrics(train_on_cache(paths, {layer}, cfg), progress=False)\n"
    )
    return peak_rss_mb(code, "train-sae memory run")


def bench_train_memory(cache_dir: Path, layer: int, log: Callable[[str], None] = print) -> dict:
    """Peak RSS in memory and streamed, at the forget cache's N tokens and at forget +
    retain's 2N (keys: cached tokens)."""
    sets = [[cache_dir / "forget"], [cache_dir / "forget", cache_dir / "retain"]]
    out: dict = {"stream_buffer_tokens": STREAM_BUFFER, "in_memory": {}, "streamed": {}}
    for paths in sets:
        tokens = sum(json.loads((p / "manifest.json").read_text())["n_rows"] for p in paths)
        for mode, memory_tokens in (("in_memory", 10**12), ("streamed", STREAM_BUFFER)):
            log(f"train-sae peak memory: {tokens} cached tokens, {mode}")
            out[mode][str(tokens)] = train_peak_memory_mb(paths, layer, memory_tokens)
    return out
