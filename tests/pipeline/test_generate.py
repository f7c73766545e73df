"""`sae-unlearn generate` on a tiny model, SAE and gated clamp config named by params.yaml."""

import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.models import load_model
from sae_unlearn.saes import load_sae_dir
from sae_unlearn.steering import gated_clamp, write_clamp_yaml
from tests.steering.helpers import GATED, LAYER, PROMPTS, gate_columns
from tests.tiny import random_sae


def write_inputs(tmp_path, model_dir):
    random_sae("jumprelu").save_model(tmp_path / "sae")
    write_clamp_yaml(
        gated_clamp(LAYER, list(GATED), list(GATED.values()), -30.0),
        tmp_path / "clamp" / "clamp.yaml",
    )
    params = tmp_path / "params.yaml"
    config = {
        "model": {"dir": str(model_dir)},
        "sae": {"dir": str(tmp_path / "sae")},
        "clamp": {"dir": str(tmp_path / "clamp")},
    }
    params.write_text(yaml.safe_dump(config))
    return params


def test_generate_prints_both_continuations_with_the_gate_marked(tmp_path, tiny_model_dir):
    params = write_inputs(tmp_path, tiny_model_dir)
    (tmp_path / "more.txt").write_text(f"{PROMPTS[6]}\n\n{PROMPTS[7]}\n")
    args = ["generate", "--prompt", PROMPTS[0], "--prompts", str(tmp_path / "more.txt")]
    result = CliRunner().invoke(app, [*args, "--max-new-tokens", "8", "--params", str(params)])
    assert result.exit_code == 0, result.output
    # The token where the oracle opens the gate in prompt 0, wrapped.
    model, tokenizer = load_model(str(tiny_model_dir), device="cpu")
    sae = load_sae_dir(tmp_path / "sae")
    cfg = gated_clamp(LAYER, list(GATED), list(GATED.values()), -30.0)
    ids = tokenizer(PROMPTS[0])["input_ids"]
    gate = gate_columns(model, sae, cfg, ids, [])
    at = gate.index(True)
    pieces = [t.replace("Ġ", " ") for t in tokenizer.convert_ids_to_tokens(ids[1:])]
    marked = "".join(pieces[: at - 1]) + f"⟦{pieces[at - 1]}⟧" + "".join(pieces[at:])
    lines = result.stdout.splitlines()  # stderr holds transformers' progress bars
    assert lines[0] == "⟦ ⟧ marks the tokens where the gate opened"
    assert lines[2] == f"[1] prompt:    {marked}"
    assert lines[3].startswith("    unsteered: ") and lines[4].startswith("    steered:   ")
    assert lines[5] == f"    (gate opened in the prompt (token {at}))"
    assert lines[7] == f"[2] prompt:    {PROMPTS[6]}" and lines[10] == "    (gate never opened)"
    assert lines[12] == f"[3] prompt:    {PROMPTS[7]}"
    assert "⟦" in lines[14] and lines[15].startswith("    (gate opened in the continuation")


def test_generate_names_what_is_missing(tmp_path, tiny_model_dir):
    params = write_inputs(tmp_path, tiny_model_dir)
    result = CliRunner().invoke(app, ["generate", "--params", str(params)])
    assert result.exit_code != 0 and "no prompts: give --prompt TEXT" in result.output
    (tmp_path / "clamp" / "clamp.yaml").unlink()
    result = CliRunner().invoke(app, ["generate", "--prompt", "Hi", "--params", str(params)])
    assert result.exit_code != 0 and "run `sae-unlearn clamp-config`" in result.output
