"""Caching with the `ray` engine: Ray Data runs the model forward in actors, one model each.

The pipeline: `ray.data.read_parquet` of the prepared corpus -> documents tokenised in
parallel (order preserved) -> packed into fixed-length sequences here, with the local
engine's `pack_sequences` (packing joins documents end to end, a sequential step) -> one row
per shard -> `map_batches` with a callable class that loads the model once per actor
(`num_gpus` each, 0 on CPU; `concurrency` actors) and writes its shards with `write_shard`
under their fixed names -> the manifest, written here last. So the folder holds the bytes the
local engine writes, a rerun replaces it whole (no shard is ever appended), and an
interrupted run leaves only the temporary folder, which is removed.

The shards are written into a temporary folder beside `out_path` by the actors themselves:
on a cluster of several machines that folder must be on a file system every node mounts, or
`cache.shards_url` names an object store each actor uploads its shards to (`remote`).
Ray is imported here only, and this module only when `cache.engine` is `ray`, so the local
engine needs none of it (`pip install "sae-unlearn[ray]"`). Ray ships the actor class to its
workers with its own serialiser; nothing this project writes or reads is pickled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from sae_unlearn.activations.cache import CacheConfig, CacheSummary, cache_meta, summarise
from sae_unlearn.activations.layout import ShardInfo, plan_shards, shard_name, write_manifest
from sae_unlearn.activations.remote import corpus_store
from sae_unlearn.activations.shards import write_shard
from sae_unlearn.activations.tokenize import pack_sequences, special_token_ids
from sae_unlearn.errors import UserError
from sae_unlearn.io import atomic_dir
from sae_unlearn.kernels import KERNEL_SETS, KERNELS_ENV


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None  # None: a local Ray with this machine's cores
    workers: int = 1  # model actors
    gpus_per_worker: float = 0.0  # 0: the actors run on CPU

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"cache.ray_workers={self.workers} must be at least 1")
        if self.gpus_per_worker < 0:
            raise UserError(f"cache.ray_gpus={self.gpus_per_worker} must be 0 or more")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError(
            'cache.engine=ray needs Ray: pip install "sae-unlearn[ray]" '
            "(or set cache.engine: local)"
        ) from exc
    return ray


def start_ray(cfg: RayConfig) -> bool:
    """Connect to Ray (or start a local one); True when this call started it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    # The actors must compute with the same pinned CPU kernels as this process.
    keys = {KERNELS_ENV, *(k for kernels in KERNEL_SETS.values() for k in kernels)}
    env = {k: os.environ[k] for k in sorted(keys) if k in os.environ}
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **kwargs)
    return True


@functools.lru_cache(maxsize=2)  # once per worker process, which Ray reuses across tasks
def load_tokenizer(model_dir: str) -> Any:
    """The model's tokenizer, as `load_model` sets it up, without loading the weights."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_width(model_dir: str, layers: list[int]) -> int:
    """The residual width, after checking every cached layer exists (from the config alone)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    text = getattr(config, "text_config", None) or config
    n = int(text.num_hidden_layers)
    for layer in layers:
        if not 0 <= layer < n:
            raise UserError(
                f"cache.layers entry={layer} but the model has {n} decoder layers "
                f"(valid: 0..{n - 1}); set cache.layers entry to a layer the model has"
            )
    return int(text.hidden_size)


def tokenize_documents(batch: dict[str, np.ndarray], model_dir: str) -> dict[str, Any]:
    """Ray Data map: each document's token ids (no special tokens; packing adds them).
    A task, not an actor, so it never holds a CPU the parquet reads wait for."""
    tokenizer = load_tokenizer(model_dir)
    ids = [tokenizer(str(t), add_special_tokens=False)["input_ids"] for t in batch["text"]]
    return {"ids": [np.asarray(i, dtype=np.int64) for i in ids]}


class CacheShards:
    """Ray Data actor: the model, loaded once, writes each shard it is given."""

    def __init__(self, model_dir: str, model_dtype: str, sequences: list, **job: Any) -> None:
        import ray

        from sae_unlearn.models.loading import load_model

        device = "cuda" if job["gpus"] > 0 else "cpu"
        self.model, _ = load_model(model_dir, model_dtype, device=device)
        self.sequences = torch.from_numpy(np.asarray(ray.get(sequences[0])).astype(np.int64))
        self.special = torch.tensor(job["special"], dtype=torch.long)
        self.job = job

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        infos = []
        store = self.job["store"]
        for index, lo, hi in zip(batch["shard"], batch["first"], batch["end"], strict=True):
            with contextlib.ExitStack() as stack:
                # With a store, a node-local folder: the shard is uploaded and deleted at once.
                folder = (
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="sae-unlearn-"))
                    if store
                    else self.job["folder"]
                )
                out_file = Path(folder) / shard_name(int(index))
                ids = self.sequences[int(lo) : int(hi)]
                meta, batch_size = self.job["meta"], self.job["batch_size"]
                args = (self.model, ids, int(lo), self.special, meta, batch_size, out_file)
                infos.append(json.dumps(asdict(write_shard(*args, store))))
        return {"info": np.asarray(infos)}


def tokenize_with_ray(corpus_file: Path, model_dir: str, cfg: CacheConfig, bos, eos):
    """The corpus's packed sequences: documents tokenised by Ray Data, in their file order."""
    ray = import_ray()
    columns = pq.read_schema(corpus_file).names
    if "text" not in columns:
        raise UserError(
            f"{corpus_file} has no `text` column (columns: {columns}); "
            "produce it with `sae-unlearn prepare-data`"
        )
    docs = ray.data.read_parquet(str(corpus_file)).select_columns(["text"])
    docs = docs.map_batches(tokenize_documents, fn_kwargs={"model_dir": model_dir}, batch_size=64)
    documents = (np.asarray(row["ids"]).tolist() for row in docs.iter_rows())
    return pack_sequences(documents, bos, eos, cfg.seq_len, cfg.max_tokens)


def cache_corpus_ray(
    model_dir: str | Path,
    corpus_file: str | Path,
    corpus: str,
    cfg: CacheConfig,
    out_path: str | Path,
    ray_cfg: RayConfig,
    model_dtype: str = "float32",
    model_name: str = "",
    progress: bool = True,
) -> CacheSummary:
    """`cache_corpus`, the forward passes run by Ray Data actors (see the module's doc)."""
    ray = import_ray()
    # Ray's workers do not run in this process's working directory: absolute paths only.
    local = Path(model_dir)
    model_dir = str(local.resolve()) if local.exists() else str(model_dir)
    corpus_file, out_path = Path(corpus_file).resolve(), Path(out_path).resolve()
    started = start_ray(ray_cfg)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # documents packed in file order
        context.enable_progress_bars = progress
        tokenizer = load_tokenizer(model_dir)
        meta = cache_meta(model_name, cfg.layers, model_width(model_dir, cfg.layers), corpus, cfg)
        start = time.perf_counter()
        sequences = tokenize_with_ray(
            Path(corpus_file),
            model_dir,
            cfg,
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
        )
        ranges = plan_shards(len(sequences), cfg.shard_sequences)
        store = corpus_store(cfg.shards_url, corpus) if cfg.shards_url else None
        with atomic_dir(out_path) as tmp:
            job = {
                "folder": str(tmp),
                "store": store,
                "meta": meta,
                "batch_size": cfg.batch_size,
                "special": special_token_ids(tokenizer),
                "gpus": ray_cfg.gpus_per_worker,
            }
            rows = [{"shard": i, "first": lo, "end": hi} for i, (lo, hi) in enumerate(ranges)]
            written = ray.data.from_items(rows).map_batches(
                CacheShards,
                fn_constructor_args=(model_dir, model_dtype, [ray.put(sequences.numpy())]),
                fn_constructor_kwargs=job,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=min(ray_cfg.workers, len(ranges))),
                num_cpus=1,
                num_gpus=ray_cfg.gpus_per_worker,
            )
            shards = [ShardInfo(**json.loads(row["info"])) for row in written.take_all()]
            manifest = write_manifest(tmp, meta, shards, store)
        return summarise(corpus, manifest, time.perf_counter() - start)
    finally:
        if started:
            ray.shutdown()
