"""`make bench`. Importing the package pins the CPU kernels as every pipeline stage does, so
the figures are those of the pipeline's own kernels (`bench_kernels` times the other sets)."""

from sae_unlearn.kernels import pin_cpu_kernels

pin_cpu_kernels()
