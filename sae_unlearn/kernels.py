"""CPU kernels pinned to one instruction set, so the same run gives the same bytes on another CPU.

PyTorch's CPU kernels (ATen's vectorised ops, MKL's GEMM, oneDNN) each pick the widest
instruction set the machine has. An AVX-512 machine and an AVX2-only one therefore round
differently in the last bits of the activation cache, and everything trained or selected on it
moves (the steered forget accuracy read 0.307 on one machine and 0.244 on another, same commit).
Each library has its own switch, read once when it first runs:

- `ATEN_CPU_CAPABILITY`: ATen's dispatch level (`default`, `avx2`, `avx512`);
- `MKL_CBWR`: MKL's conditional numerical reproducibility branch; `AVX2,STRICT` gives the same
  bits on every Intel CPU with AVX2 whatever the data's alignment, `COMPATIBLE` on every x86 CPU
  (AMD included) at about 2.5x the matmul time;
- `ONEDNN_MAX_CPU_ISA`: the widest instruction set oneDNN may use.

They must be in the environment before torch is imported (ATen reads its level on the first
op), so the command line sets them at its entry, before any module imports torch. A value the
user has set already is kept. `SAE_UNLEARN_CPU_KERNELS` picks the set: `avx2` (the default:
every x86 machine of the last decade, about the speed of native on an AVX2-only one),
`compatible` (AMD and Intel alike, slower) or `native` (the machine's fastest, no reproducibility
across CPUs). Same bytes also need the same thread count where a kernel splits a reduction
across threads; 1 and 2 threads gave the same bytes here.

Kept free of torch (and of any import that loads it), so it can run before torch is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

KERNELS_ENV = "SAE_UNLEARN_CPU_KERNELS"
DEFAULT_KERNELS = "avx2"
KERNEL_SETS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "AVX2,STRICT",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
    "compatible": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
    },
    "native": {},
}
# What an AVX2-only machine would choose by itself on this one: the tests and `make bench` run
# with it to check that the pinned kernels give the same bytes as on such a machine.
LOWER_ISA_ENV = {
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def avx2_only_machine_env(kernels: str) -> dict[str, str]:
    """The caps that imitate an AVX2-only machine under a kernel set: each library capped at
    AVX2, except where the set pins that library itself (a user's value would override it)."""
    return {key: value for key, value in LOWER_ISA_ENV.items() if key not in KERNEL_SETS[kernels]}


def kernel_set(environ: MutableMapping[str, str] | None = None) -> str:
    """The kernel set `SAE_UNLEARN_CPU_KERNELS` names (default `avx2`); a bad name is refused."""
    environ = os.environ if environ is None else environ
    name = environ.get(KERNELS_ENV, "").strip().lower() or DEFAULT_KERNELS
    if name not in KERNEL_SETS:
        from sae_unlearn.errors import user_error

        raise user_error(
            f"environment variable {KERNELS_ENV}",
            f"{name!r} is not a kernel set",
            f"set it to one of {', '.join(KERNEL_SETS)} or unset it (default {DEFAULT_KERNELS})",
        )
    return name


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put the chosen set's switches into the environment, keeping any the user set, and
    return them. At a program's entry, before torch is imported. Once torch is in the process
    (a notebook, the test runner) ATen has read its level already, so setting them would pin
    MKL but not ATen: the environment is left as it is and nothing is returned."""
    environ = os.environ if environ is None else environ
    wanted = KERNEL_SETS[kernel_set(environ)]
    if environ is os.environ and "torch" in sys.modules:
        return {}
    for key, value in wanted.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in wanted}
