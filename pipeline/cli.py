"""The `sae-unlearn` console script: one sub-command per DVC stage."""

from __future__ import annotations

import typer

from pipeline import cache, prepare_data, prepare_model, train_sae

app = typer.Typer(
    help="Unlearning by conditional SAE latent clamping: one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("prepare-model")(prepare_model.command)
app.command("prepare-data")(prepare_data.command)
app.command("cache")(cache.command)
app.command("train-sae")(train_sae.command)

if __name__ == "__main__":
    app()
