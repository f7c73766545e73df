"""What pinning the CPU kernels costs, and whether it gives an AVX2-only machine's bytes.

Each kernel set runs in a fresh process (the switches are read when torch first runs): the
embedded model's forward over a cache batch (16 x 128 tokens) and a TopK SAE encode of its
layer-9 residuals, best of three, and a hash of those residuals, computed again with every
library capped at AVX2 as on an AVX2-only machine (`avx2_only_machine_env`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sae_unlearn.kernels import KERNEL_SETS, KERNELS_ENV, LOWER_ISA_ENV, avx2_only_machine_env

PROBE = """
import hashlib, json, sys, time
import benchmarks  # pins the kernels SAE_UNLEARN_CPU_KERNELS names
import torch
from sae_unlearn.models import load_model
model, _ = load_model(sys.argv[1])
ids = torch.randint(0, 20000, (16, 128), generator=torch.Generator().manual_seed(0))
w_enc = torch.randn(640, 4096, generator=torch.Generator().manual_seed(1)) / 25
forward, encode = [], []
with torch.no_grad():
    model(input_ids=ids[:2, :16])
    for _ in range(3):
        start = time.perf_counter()
        out = model(input_ids=ids, output_hidden_states=True)
        forward.append(time.perf_counter() - start)
        resid = out.hidden_states[10].reshape(-1, 640)
        start = time.perf_counter()
        torch.relu(resid @ w_enc).topk(32, dim=-1)
        encode.append(time.perf_counter() - start)
print(json.dumps({
    "capability": torch.backends.cpu.get_cpu_capability(),
    "forward_s": round(min(forward), 3),
    "sae_encode_s": round(min(encode), 4),
    "residual_sha256": hashlib.sha256(resid.numpy().tobytes()).hexdigest()[:16],
}))
"""


def _probe(model_dir: Path, env: dict[str, str]) -> dict:
    switches = {k for s in KERNEL_SETS.values() for k in s} | set(LOWER_ISA_ENV)
    base = {k: v for k, v in os.environ.items() if k not in switches}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir)],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(model_dir: Path, log=print) -> dict:
    results: dict = {}
    for name in KERNEL_SETS:
        log(f"kernels: {name}")
        own = _probe(model_dir, {KERNELS_ENV: name})
        lower = _probe(model_dir, {KERNELS_ENV: name, **avx2_only_machine_env(name)})
        results[name] = {
            **own,
            "same_bytes_as_avx2_only_machine": own["residual_sha256"] == lower["residual_sha256"],
        }
    native = results["native"]
    for row in results.values():
        row["forward_vs_native"] = round(row["forward_s"] / native["forward_s"], 3)
    return results
