"""The `sae-unlearn` console script: one sub-command per DVC stage, and `compare` and
`generate`, which are not stages."""

from __future__ import annotations

import typer

from pipeline import (
    attack,
    cache,
    clamp_config,
    compare,
    evaluate,
    generate,
    prepare_data,
    prepare_model,
    report,
    score,
    select,
    train_sae,
)

app = typer.Typer(
    help="Unlearning by conditional SAE latent clamping: one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("prepare-model")(prepare_model.command)
app.command("prepare-data")(prepare_data.command)
app.command("cache")(cache.command)
app.command("train-sae")(train_sae.command)
app.command("score")(score.command)
app.command("select")(select.command)
app.command("clamp-config")(clamp_config.command)
app.command("evaluate-baseline")(evaluate.baseline_command)
app.command("evaluate")(evaluate.steered_command)
app.command("attack")(attack.command)
app.command("report")(report.command)
app.command("compare")(compare.command)
app.command("generate")(generate.command)

if __name__ == "__main__":
    app()
