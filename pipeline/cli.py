"""The `sae-unlearn` console script: one sub-command per DVC stage, and `compare`,
`generate` and `lm-eval`, which are not stages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from pipeline import (
    attack,
    attack_family,
    cache,
    clamp_config,
    compare,
    evaluate,
    generate,
    harness,
    prepare_data,
    prepare_model,
    report,
    score,
    select,
    train_sae,
)
from sae_unlearn.errors import UserError

app = typer.Typer(
    help="Unlearning by conditional SAE latent clamping: one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
COMMANDS: dict[str, Callable[..., Any]] = {
    "prepare-model": prepare_model.command,
    "prepare-data": prepare_data.command,
    "cache": cache.command,
    "train-sae": train_sae.command,
    "score": score.command,
    "select": select.command,
    "clamp-config": clamp_config.command,
    "evaluate-baseline": evaluate.baseline_command,
    "evaluate": evaluate.steered_command,
    "attack-baseline": attack.baseline_command,
    "attack": attack.steered_command,
    "attack-family": attack_family.command,
    "report": report.command,
    "compare": compare.command,
    "generate": generate.command,
}


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one handler of bad input: a UserError's message on stderr, no traceback, exit 2
    (click's own usage errors exit 2 too). Any other exception is a program error and keeps
    its traceback."""

    @functools.wraps(command)  # typer reads the options from the wrapped signature
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None

    return run


for name, command in COMMANDS.items():
    app.command(name)(user_errors(command))
# A passthrough: lm-eval parses its own arguments, --help included.
app.command("lm-eval", context_settings=harness.CONTEXT_SETTINGS)(user_errors(harness.command))

if __name__ == "__main__":
    app()
