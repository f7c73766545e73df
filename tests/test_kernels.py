"""Pinned CPU kernels: the same bytes whatever instruction set the machine would pick itself.

Each check runs a fresh process (the switches are read when torch first runs) that computes
the kinds of op the pipeline is made of (a GEMM of the model's and the SAE's shapes, GELU,
softmax, a reduction) and prints a hash of the results. An AVX2-only machine is imitated on
this one by capping each library at AVX2 (`LOWER_ISA_ENV`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sae_unlearn.errors import UserError
from sae_unlearn.kernels import (
    DEFAULT_KERNELS,
    KERNEL_SETS,
    KERNELS_ENV,
    LOWER_ISA_ENV,
    avx2_only_machine_env,
    kernel_set,
    pin_cpu_kernels,
)

SWITCHES = {key for switches in KERNEL_SETS.values() for key in switches} | set(LOWER_ISA_ENV)

# `import pipeline` pins the kernels, as every sae-unlearn command does at its entry.
PROBE = """
import hashlib, sys
import pipeline
import torch
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 640, generator=g)
w = torch.randn(640, 2048, generator=g) / 25
h = torch.nn.functional.gelu(x @ w)
out = torch.cat([h.flatten(), h.softmax(-1).flatten(), h.sum(0), (h @ w.T).flatten()])
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


def probe(**env: str) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SWITCHES and k != KERNELS_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    capability, digest = proc.stdout.split()
    return capability, digest


def test_the_default_set_is_written_into_the_environment_keeping_the_users_values():
    environ = {"MKL_CBWR": "COMPATIBLE"}
    pinned = pin_cpu_kernels(environ)
    assert environ["MKL_CBWR"] == "COMPATIBLE"  # the user's own value wins
    assert environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert pinned == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    }


def test_native_sets_nothing_and_a_bad_name_is_refused():
    environ = {KERNELS_ENV: "native"}
    assert pin_cpu_kernels(environ) == {}
    assert environ == {KERNELS_ENV: "native"}
    assert kernel_set({}) == DEFAULT_KERNELS
    with pytest.raises(UserError, match="'avx9' is not a kernel set.*avx2, compatible, native"):
        kernel_set({KERNELS_ENV: "avx9"})


def test_a_process_that_imported_torch_already_is_left_alone():
    # This test process has torch loaded: pinning now would reach MKL but not ATen.
    import torch  # noqa: F401

    assert pin_cpu_kernels() == {}


def test_pinned_kernels_give_the_same_bytes_as_on_an_avx2_only_machine():
    capability, pinned = probe()
    assert capability == "AVX2"
    assert probe(**LOWER_ISA_ENV) == (capability, pinned)


def test_without_pinning_this_machines_kernels_give_other_bytes():
    """The control: the imitated AVX2-only machine does change the bytes when nothing is
    pinned, so the test above can fail. Only on a machine with more than AVX2."""
    native_capability, native = probe(**{KERNELS_ENV: "native"})
    if native_capability in ("DEFAULT", "AVX2"):
        pytest.skip(f"this CPU's widest level is {native_capability}: nothing to imitate")
    _, lowered = probe(**{KERNELS_ENV: "native"}, **LOWER_ISA_ENV)
    assert lowered != native


def test_the_compatible_set_pins_every_library_below_avx2():
    capability, compatible = probe(**{KERNELS_ENV: "compatible"})
    assert capability == "DEFAULT"
    lower = avx2_only_machine_env("compatible")
    assert lower == {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # it pins the others below AVX2
    assert probe(**{KERNELS_ENV: "compatible"}, **lower) == (capability, compatible)
