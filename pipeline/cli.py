"""The `sae-unlearn` console script: one sub-command per DVC stage, and `compare`,
`generate` and `lm-eval`, which are not stages."""

from __future__ import annotations

import functools
import gc
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from sae_unlearn.errors import UserError

app = typer.Typer(
    help="Unlearning by conditional SAE latent clamping: one command per pipeline stage.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
# name -> "module:function". A stage's process imports only its own command's module (the
# report stage then starts in under a second, not the 5 s torch, transformers and sae-lens
# take); `--help` and the tests import them all.
COMMANDS: dict[str, str] = {
    "prepare-model": "pipeline.prepare_model:command",
    "prepare-data": "pipeline.prepare_data:command",
    "cache": "pipeline.cache:command",
    "train-sae": "pipeline.train_sae:command",
    "score": "pipeline.score:command",
    "select": "pipeline.select:command",
    "clamp-config": "pipeline.clamp_config:command",
    "evaluate-baseline": "pipeline.evaluate:baseline_command",
    "evaluate": "pipeline.evaluate:steered_command",
    "attack-family": "pipeline.attack_family:command",
    "report": "pipeline.report:command",
    "compare": "pipeline.compare:command",
    "generate": "pipeline.generate:command",
    "lm-eval": "pipeline.harness:command",
}


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one handler of bad input: a UserError's message on stderr, no traceback, exit 2
    (click's own usage errors exit 2 too). Any other exception is a program error and keeps
    its traceback."""

    @functools.wraps(command)  # typer reads the options from the wrapped signature
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = command(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        if _only is not None:
            skip_teardown_collections()
        return result

    return run


def skip_teardown_collections() -> None:
    """Called once a sub-command's process has done its work (its outputs written and
    closed): Python's teardown would then walk torch's, transformers' and sae-lens's half a
    million objects in its garbage collections, 1.1-1.4 s a process and ten processes a
    clamp sweep point. Frozen objects are left to the OS; the atexit handlers (temporary
    folders, file locks, logging) still run. Not in a process that goes on (the tests call
    the app in theirs), where frozen garbage would never be freed."""
    gc.freeze()


@app.callback()
def main() -> None:
    """Unlearning by conditional SAE latent clamping: one command per pipeline stage."""


def _register(name: str) -> None:
    module, function = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), function)
    if name == "lm-eval":  # a passthrough: lm-eval parses its own arguments, --help included
        settings = importlib.import_module(module).CONTEXT_SETTINGS
        app.command(name, context_settings=settings)(user_errors(command))
    else:
        app.command(name)(user_errors(command))


def _invoked(argv: list[str]) -> str | None:
    """The sub-command this process runs, when the console script was called with one."""
    if not argv or not argv[0].endswith(("sae-unlearn", "cli.py")) or len(argv) < 2:
        return None
    return argv[1] if argv[1] in COMMANDS else None


_only = _invoked(sys.argv)
for _name in [_only] if _only else COMMANDS:
    _register(_name)

if __name__ == "__main__":
    app()
