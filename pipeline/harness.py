"""lm-eval: lm-evaluation-harness' own command line with the `sae_unlearn` model registered.

lm-eval 0.4 discovers no plugin models, so this imports the registration and hands every
argument to lm-eval unchanged: `sae-unlearn lm-eval --model sae_unlearn --model_args
pretrained=data/model,sae=data/sae,clamp=data/clamp/clamp.yaml --tasks ...`.
"""

from __future__ import annotations

import sys

import typer

from sae_unlearn.harness import register

# typer must neither parse lm-eval's options nor answer --help itself.
CONTEXT_SETTINGS = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}


def command(ctx: typer.Context) -> None:
    """lm-evaluation-harness with the `sae_unlearn` model (every argument goes to lm-eval)."""
    register()
    from lm_eval.__main__ import cli_evaluate

    args = list(ctx.args)
    if not args or args in (["--help"], ["-h"]):
        typer.echo(
            "sae-unlearn lm-eval: lm-eval's `run` with the model `sae_unlearn` registered:\n"
            "  --model sae_unlearn --model_args pretrained=DIR,sae=DIR,clamp=FILE[,layer=N]\n"
            "(clamp: a clamp.yaml or the paper's steering CSV; without sae and clamp the\n"
            "model runs unsteered). lm-eval's options follow.\n"
        )
        args = ["run", "--help"]
    argv, sys.argv = sys.argv, ["lm-eval", *args]
    try:
        cli_evaluate()
    finally:
        sys.argv = argv
