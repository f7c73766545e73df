"""Thin typer stage commands: read params, call the library, write outputs atomically.

Importing this package pins the CPU kernels (`sae_unlearn.kernels`) before any stage module
imports torch, so every stage, `generate` and `lm-eval` compute the same bytes on any x86 CPU
with AVX2."""

import sys

from sae_unlearn.errors import UserError
from sae_unlearn.kernels import pin_cpu_kernels

try:
    pin_cpu_kernels()
except UserError as exc:  # before the CLI's own handler exists: the same message and exit code
    print(f"Error: {exc}", file=sys.stderr)
    sys.exit(2)
