"""`make bench`: speed and memory figures, printed and saved to benchmarks/results.json.

Runs on the embedded model prepared by `make run` (data/model) and the prepared corpora
(data/prepared); targets are reported next to each figure, never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.bench_cache_engines import dtype_bytes, engine_speeds, ray_peak_memory_mb
from benchmarks.bench_train_memory import bench_train_memory
from benchmarks.processes import peak_rss_mb
from sae_unlearn.activations import CacheConfig, cache_corpus, tokenize_corpus
from sae_unlearn.evaluation import EvalConfig, evaluate_questions
from sae_unlearn.io import write_json
from sae_unlearn.kernels import kernel_set
from sae_unlearn.models import capture_residuals, load_model, run_to_layers
from sae_unlearn.prepared import prepared_path

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "data" / "model"
DATA_DIR = ROOT / "data" / "prepared"
FORGET_CORPUS = prepared_path(DATA_DIR, "forget", "corpus")
SAE_DIR = ROOT / "data" / "sae"
CLAMP = ROOT / "data" / "clamp" / "clamp.yaml"
RESULTS = ROOT / "benchmarks" / "results.json"
LAYER = 9
SEQ_LEN, BATCH = 128, 16


def _texts() -> list[str]:
    return pd.read_parquet(FORGET_CORPUS)["text"].tolist()


def bench_cache(model, tokenizer, tmp: Path, n_tokens: int = 16 * 128 * 6) -> dict:
    """Cache throughput vs a bare batched forward of the full model over the same batches."""
    texts = _texts()
    cfg = CacheConfig(layers=(LAYER,), seq_len=SEQ_LEN, batch_size=BATCH, max_tokens=n_tokens)
    seqs = tokenize_corpus(texts, tokenizer, SEQ_LEN, n_tokens)
    with torch.no_grad():
        model(input_ids=seqs[:BATCH])  # warm-up
        start = time.perf_counter()
        for lo in range(0, len(seqs), BATCH):
            ids = seqs[lo : lo + BATCH]
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        forward_s = time.perf_counter() - start
        # The cache stops after the deepest cached block and skips the unembedding, so
        # also time that same truncated forward: the ratio to it is the parquet overhead.
        start = time.perf_counter()
        with capture_residuals(model, [LAYER], stop_after_last=True) as captured:
            for lo in range(0, len(seqs), BATCH):
                ids = seqs[lo : lo + BATCH]
                run_to_layers(model, captured, input_ids=ids, attention_mask=torch.ones_like(ids))
        truncated_s = time.perf_counter() - start
    summary = cache_corpus(model, tokenizer, texts, "forget", cfg, tmp / "bench", progress=False)
    forward_tps = seqs.numel() / forward_s
    return {
        "cache_tokens": summary.n_tokens,
        "cache_tokens_per_s": summary.tokens_per_second,
        "bare_forward_tokens_per_s": round(forward_tps, 1),
        "cache_vs_forward_ratio": round(summary.tokens_per_second / forward_tps, 3),
        "cache_vs_forward_target": ">= 0.9",
        "truncated_forward_tokens_per_s": round(seqs.numel() / truncated_s, 1),
        "cache_vs_truncated_forward_ratio": round(
            summary.tokens_per_second / (seqs.numel() / truncated_s), 3
        ),
        "parquet_bytes_per_token": round(summary.bytes / summary.n_tokens, 1),
    }


def cache_peak_memory_mb(n_tokens: int, tmp: Path) -> float:
    """Peak RSS of a fresh process that caches n_tokens (the cache stage's work)."""
    code = (
        "import pandas as pd\n"
        "from sae_unlearn.models import load_model\n"
        "from sae_unlearn.activations import CacheConfig, cache_corpus\n"
        f"m, t = load_model({str(MODEL_DIR)!r})\n"
        f"texts = pd.read_parquet({str(FORGET_CORPUS)!r})['text'].tolist()\n"
        f"cfg = CacheConfig(layers=({LAYER},), seq_len={SEQ_LEN}, batch_size={BATCH}, "
        f"max_tokens={n_tokens})\n"
        f"cache_corpus(m, t, texts, 'forget', cfg, {str(tmp / f'mem_{n_tokens}')!r}, "
        "progress=False)\n"
    )
    return peak_rss_mb(code, f"caching {n_tokens} tokens")


def bench_steering(model, tokenizer) -> dict:
    """Steered vs unsteered forward on the same batches, and evaluation questions/s."""
    from sae_unlearn.saes import load_sae_dir
    from sae_unlearn.steering import ClampHook, read_clamp_yaml, steer

    # Two batches a timing, 8 pairs: the same 36 batch forwards as 4 repeats of 4 batches,
    # but twice the pairs to take the minimum over and a paired ratio per round.
    seqs = tokenize_corpus(_texts(), tokenizer, SEQ_LEN, BATCH * SEQ_LEN * 2)
    hook = ClampHook(load_sae_dir(SAE_DIR), read_clamp_yaml(CLAMP))

    def timed(steered: bool) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for lo in range(0, len(seqs), BATCH):
                ids = seqs[lo : lo + BATCH]
                if steered:
                    with steer(model, hook):
                        model(input_ids=ids)
                else:
                    model(input_ids=ids)
        return time.perf_counter() - start

    timed(False)  # warm-up
    timed(True)
    # Pairs in alternating order (plain first, then steered first), so a load that drifts
    # within a pair favours neither side; the median of the paired ratios is robust to a
    # pair hit by a burst, the ratio of the minima to load that only adds time.
    plain, steered = [], []
    for round_ in range(8):
        for is_steered in (False, True) if round_ % 2 == 0 else (True, False):
            (steered if is_steered else plain).append(timed(is_steered))
    paired = [s / p for s, p in zip(steered, plain, strict=True)]
    questions = pd.read_parquet(prepared_path(DATA_DIR, "forget", "questions")).head(64)
    start = time.perf_counter()
    evaluate_questions(model, tokenizer, questions, EvalConfig(format="cloze", batch_size=32))
    eval_s = time.perf_counter() - start
    return {
        "steered_vs_unsteered_ratio": round(min(steered) / min(plain), 3),
        "steered_vs_unsteered_median_paired": round(statistics.median(paired), 3),
        # the pairs themselves, to judge the machine's noise beside the two summaries
        "unsteered_and_steered_seconds": [
            [round(p, 3), round(s, 3)] for p, s in zip(plain, steered, strict=True)
        ],
        "steered_vs_unsteered_target": "<= 1.02",
        "sae_architecture": hook.slice.architecture,
        "encoded_columns": hook.slice.encoded_columns,
        "sae_latents": hook.slice.d_sae,
        "eval_questions_per_s": round(len(questions) / eval_s, 2),
    }


def sweep_stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> set[str]:
    """What a clamp sweep point (`dvc exp run -S clamp.value=...`) reruns: clamp-config and
    every stage downstream of it, read from dvc.yaml's outputs and dependencies."""
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]

    def paths(entries) -> list[str]:
        return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]

    outs = {n: paths(s.get("outs")) + paths(s.get("metrics")) for n, s in stages.items()}
    found, todo = {"clamp-config"}, ["clamp-config"]
    while todo:
        made = outs[todo.pop()]
        for name, stage in stages.items():
            deps = paths(stage.get("deps"))
            reads = any(d == o or d.startswith(o + "/") for d in deps for o in made)
            if name not in found and reads:
                found.add(name)
                todo.append(name)
    return found


def _sweep_share(stages: dict[str, float], sweep_names: set[str], key: str) -> dict:
    total = sum(stages.values())
    sweep = sum(stages.get(name, 0.0) for name in sweep_names)
    return {
        f"stage_{key}": stages,
        f"repro_{key}": round(total, 1),
        f"sweep_point_{key}": round(sweep, 1),
        f"sweep_point_share_{key}": round(sweep / total, 3),
        f"attack_{key}": round(sum(v for k, v in stages.items() if k.startswith("attack-")), 1),
    }


def pipeline_times() -> dict:
    """The last `dvc repro`'s stage times (logs/timings.json, which every stage writes), the
    whole DAG's sum, and the share of it a clamp sweep point reruns: by each stage's own work
    (`seconds`), and by its whole process (`process_seconds`: imports and model loading too,
    what each of the DAG's processes costs beyond its work)."""
    from pipeline.timing import read_timings

    timings = read_timings(ROOT / "logs" / "timings.json")
    if "attack-gcg" not in timings:
        return {"skipped": "no logs/timings.json of a whole `dvc repro`: run `make run` first"}
    sweep_names = sweep_stages()
    out: dict = {"sweep_point_stages": sorted(sweep_names), "sweep_point_target": "<= 0.25"}
    for key in ("seconds", "process_seconds"):
        stages = {name: e[key] for name, e in timings.items() if key in e}
        out.update(_sweep_share(stages, sweep_names, key))
    return out


def say(message: str) -> None:
    """Progress on stderr, so a long benchmark is never silent."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main() -> None:
    if not MODEL_DIR.exists() or not DATA_DIR.exists():
        sys.exit("benchmarks need data/model and data/prepared: run `make run` first")
    torch.manual_seed(0)
    results: dict = {
        "machine": {
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_kernels": kernel_set(),
        }
    }
    tmp = ROOT / "benchmarks" / ".tmp"
    tmp.mkdir(exist_ok=True)
    model, tokenizer = load_model(str(MODEL_DIR))
    say("cache throughput and peak memory")
    results["cache"] = bench_cache(model, tokenizer, tmp)
    n = 16 * 128 * 4
    results["cache"]["peak_rss_mb"] = {
        str(n): cache_peak_memory_mb(n, tmp),
        str(2 * n): cache_peak_memory_mb(2 * n, tmp),
    }
    if importlib.util.find_spec("ray") is None:
        ray_peak = "skipped: no module named 'ray' (pip install 'sae-unlearn[ray]')"
    else:
        say("ray engine peak memory: driver and model actor")
        ray_peak = {
            str(k): ray_peak_memory_mb(k, tmp, MODEL_DIR, FORGET_CORPUS, LAYER) for k in (n, 2 * n)
        }
    results["cache"]["ray_peak_rss_mb"] = ray_peak
    say("cache bytes per token by dtype; local and ray engines")
    results["cache"]["by_dtype"] = dtype_bytes(model, tokenizer, _texts(), tmp, LAYER, n)
    results["cache"]["engines"] = engine_speeds(
        model, tokenizer, FORGET_CORPUS, MODEL_DIR, tmp, LAYER, 2 * n, log=say
    )
    say("train-sae peak memory, in memory and streamed")
    results["sae_memory"] = bench_train_memory(ROOT / "data" / "cache", LAYER, log=say)
    if SAE_DIR.exists() and CLAMP.exists():
        say("steered vs unsteered forward")
        results["steering"] = bench_steering(model, tokenizer)
    else:
        results["steering"] = "skipped: run `make run` to produce data/sae and data/clamp"
    try:
        from benchmarks.bench_attack import run as bench_attack

        say("GCG seconds per step")
        results["attack"] = bench_attack()
    except ImportError as exc:
        results["attack"] = f"skipped: {exc}"
    if SAE_DIR.exists() and CLAMP.exists():
        try:
            from benchmarks.bench_lm_eval import run as bench_lm_eval

            say("lm-eval vs our evaluation (several minutes)")
            results["lm_eval"] = bench_lm_eval(ROOT, log=say)
        except ImportError as exc:
            results["lm_eval"] = f"skipped: {exc} (pip install 'sae-unlearn[lm-eval]')"
    from benchmarks.bench_kernels import run as bench_kernels

    say("CPU kernel sets: cost and same bytes as an AVX2-only machine")
    results["kernels"] = bench_kernels(MODEL_DIR, log=say)
    results["pipeline"] = pipeline_times()
    shutil.rmtree(tmp, ignore_errors=True)  # the caches written here (folders of shards)
    write_json(RESULTS, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
