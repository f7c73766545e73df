"""generate: unsteered and steered greedy continuations side by side, with the tokens where
the clamp's gate opened marked. Not a DVC stage: a look at what the steered model says."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.clamp_file import clamp_file
from pipeline.params import Params, ParamsOption
from sae_unlearn.evaluation import checked_clamp, load_clamp_hook
from sae_unlearn.generation import compare_continuations, read_prompts, render
from sae_unlearn.models import load_model


def command(
    prompt: list[str] | None = typer.Option(None, "--prompt", help="a prompt (repeatable)"),
    prompts: Path | None = typer.Option(None, "--prompts", help="a file of prompts, one a line"),
    max_new_tokens: int = typer.Option(20, min=1, help="tokens generated per prompt"),
    batch_size: int = typer.Option(8, min=1, help="prompts per left-padded batch"),
    model_dir: Path | None = typer.Option(None, help="model directory"),
    sae_dir: Path | None = typer.Option(None, help="SAE directory"),
    clamp: Path | None = typer.Option(None, help="clamp config YAML"),
    params: Path = ParamsOption,
) -> None:
    """Greedy continuations without and with the clamp; ⟦ ⟧ marks where the gate opened."""
    p = Params.load(params)
    texts = read_prompts(prompt, prompts)
    clamp_path = clamp_file(p, clamp)
    sae_path = Path(p.pick(sae_dir, "sae.dir"))
    clamp_cfg = checked_clamp(sae_path, clamp_path)  # before the model loads
    model, tokenizer = load_model(str(p.pick(model_dir, "model.dir")), p.get("model.dtype"))
    hook = load_clamp_hook(model, sae_path, clamp_cfg)
    rows = compare_continuations(model, tokenizer, texts, hook, max_new_tokens, batch_size)
    typer.echo(render(tokenizer, rows, gated=hook.sequence_level))
