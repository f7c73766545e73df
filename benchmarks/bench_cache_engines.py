"""`make bench`, the sharded cache: bytes per token for each storage dtype, and tokens/s of
the `local` engine and of the `ray` engine with 1 and 2 model actors on the same tokens.

Each figure caches the forget corpus at one layer. The ray figures count from the first
parquet read to the manifest (documents tokenised, actors started and their model loaded,
shards written); the local one from tokenising to the manifest, the model already loaded.
Ray's own start (`ray.init`) is left out of both.

`ray_peak_memory_mb` is the ray engine's memory: the peak RSS of the driver and of the largest
model actor, the local engine's `cache_peak_memory_mb` (benchmarks/run.py) counterpart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sae_unlearn.activations import CacheConfig, cache_corpus
from sae_unlearn.choices import CACHE_DTYPES


def dtype_bytes(model, tokenizer, texts, tmp: Path, layer: int, n_tokens: int) -> dict:
    """Bytes per token on disk (shards, zstd) for each `cache.dtype`, next to the raw vector."""
    out = {}
    for dtype in CACHE_DTYPES:
        cfg = CacheConfig(layers=(layer,), max_tokens=n_tokens, dtype=dtype)
        folder = tmp / f"dtype_{dtype}"
        summary = cache_corpus(model, tokenizer, texts, "forget", cfg, folder, progress=False)
        width = json.loads((folder / "manifest.json").read_text())["d_model"]
        out[dtype] = {
            "bytes_per_token": round(summary.bytes / summary.n_tokens, 1),
            "vector_bytes_per_token": width * (4 if dtype == "float32" else 2),
        }
    return out


def engine_speeds(
    model,
    tokenizer,
    corpus_file: Path,
    model_dir: Path,
    tmp: Path,
    layer: int,
    n_tokens: int,
    log: Callable[[str], None] = print,
) -> dict:
    """tokens/s of each engine on the same `n_tokens` (two shards, so two actors share them)."""
    import pandas as pd

    texts = pd.read_parquet(corpus_file)["text"].tolist()
    cfg = CacheConfig(layers=(layer,), max_tokens=n_tokens, shard_batches=max(1, n_tokens // 4096))
    folder = tmp / "engine_local"
    local = cache_corpus(model, tokenizer, texts, "forget", cfg, folder, progress=False)
    out = {"tokens": local.n_tokens, "shards": -(-local.n_sequences // cfg.shard_sequences)}
    out["local_tokens_per_s"] = local.tokens_per_second
    try:
        import ray

        from sae_unlearn.activations.ray_engine import RayConfig, cache_corpus_ray, start_ray
    except ImportError as exc:
        return {**out, "ray": f"skipped: {exc} (pip install 'sae-unlearn[ray]')"}
    for workers in (1, 2):
        log(f"ray engine, {workers} worker(s)")
        ray_cfg = RayConfig(workers=workers)
        start_ray(ray_cfg)
        start = time.perf_counter()
        folder = tmp / f"engine_ray_{workers}"
        summary = cache_corpus_ray(
            model_dir, corpus_file, "forget", cfg, folder, ray_cfg, progress=False
        )
        ray.shutdown()
        same = all(
            (folder / p.name).read_bytes() == p.read_bytes()
            for p in (tmp / "engine_local").iterdir()
        )
        out[f"ray_{workers}_workers_tokens_per_s"] = summary.tokens_per_second
        out[f"ray_{workers}_workers_wall_s"] = round(time.perf_counter() - start, 1)
        out[f"ray_{workers}_workers_same_bytes_as_local"] = same
    return out


# A model actor's process title, set by Ray: `ray::MapWorker(MapBatches(CacheShards)).submit`
# (`.__init__` while it loads the model); idle workers read `ray::IDLE`, tokenising tasks
# `ray::MapBatches(tokenize_documents)`.
ACTOR_CLASS = "CacheShards"
SAMPLE_S = 0.1


def actor_peaks_kb(peaks: dict[int, int]) -> None:
    """Record into `peaks` (pid -> kB) the VmHWM (peak RSS so far, from /proc) of every model
    actor among this process's descendants; a local Ray's raylet, a child of the driver,
    starts its workers, so another Ray on the machine is never counted."""
    import psutil

    for proc in psutil.Process().children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
            if not (title.startswith("ray::") and ACTOR_CLASS in title):
                continue
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except (psutil.Error, OSError):
            continue  # exited between the listing and the read
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[proc.pid] = max(peaks.get(proc.pid, 0), int(line.split()[1]))


def ray_driver_memory(
    n_tokens: int, folder: str, model_dir: str, corpus_file: str, layer: int, workers: int
) -> None:
    """Run in a fresh process by `ray_peak_memory_mb`: caches `n_tokens` with the ray engine
    while a thread samples the actors' peaks, then prints the figures as one JSON line."""
    import resource

    from sae_unlearn.activations.ray_engine import RayConfig, cache_corpus_ray, start_ray

    peaks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            actor_peaks_kb(peaks)
            done.wait(SAMPLE_S)

    ray_cfg = RayConfig(workers=workers)
    # Shards of a fixed 4,096 tokens (2 batches of 16 x 128): 2N tokens means twice the
    # shards, not bigger ones, so a flat figure says the actor frees each shard it writes.
    cfg = CacheConfig(layers=(layer,), max_tokens=n_tokens, shard_batches=2)
    start_ray(ray_cfg)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        cache_corpus_ray(model_dir, corpus_file, "forget", cfg, folder, ray_cfg, progress=False)
    finally:
        done.set()
        thread.join()
    driver_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    out: dict = {"driver_mb": round(driver_kb / 1024, 1)}
    if peaks:
        out["worker_mb"] = round(max(peaks.values()) / 1024, 1)
        out["actors_seen"] = len(peaks)
    else:
        out["worker_mb"] = (
            f"not measured: no ray:: process running {ACTOR_CLASS} was seen under the driver "
            f"(sampled every {SAMPLE_S} s)"
        )
    print(json.dumps(out))


def ray_peak_memory_mb(
    n_tokens: int, tmp: Path, model_dir: Path, corpus_file: Path, layer: int, workers: int = 1
) -> dict:
    """Peak RSS of the ray engine caching `n_tokens` from a fresh process: the driver's
    (`ru_maxrss`) and the largest model actor's (its VmHWM, sampled every 0.1 s while the job
    runs, so a peak reached in an actor's last 0.1 s would be missed)."""
    if not Path("/proc/self/status").exists():
        return {"driver_mb": "skipped: needs Linux /proc", "worker_mb": "skipped: needs /proc"}
    args = (n_tokens, str(tmp / f"mem_ray_{n_tokens}"), str(model_dir), str(corpus_file))
    code = (
        "from benchmarks.bench_cache_engines import ray_driver_memory\n"
        f"ray_driver_memory(*{args!r}, {layer}, {workers})\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    if out.returncode != 0:
        raise RuntimeError(f"ray peak memory at {n_tokens} tokens failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
