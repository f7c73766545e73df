"""The `sae-unlearn` console script: one sub-command per DVC stage."""

from __future__ import annotations

import typer

from pipeline import cache, prepare_model

app = typer.Typer(
    help="Unlearning by conditional SAE latent clamping: one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("prepare-model")(prepare_model.command)
app.command("cache")(cache.command)

if __name__ == "__main__":
    app()
