"""The `project` fixture: every input the report reads, at the default paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reporting.helpers import (
    DVC_YAML,
    FEWSHOT,
    GCG,
    GCG_LOSSES,
    GCG_SUFFIXES,
    GENERATION,
    PARAMS,
    SAMPLES,
    contexts_frame,
    evaluation_metrics,
    latents_frame,
    write_json,
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project directory holding every input the report reads, at the default paths."""
    from sae_unlearn.selection import SelectConfig, select_latents

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS.format(model="embedded"))
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    base, steered = evaluation_metrics()
    write_json(tmp_path / "metrics/baseline.json", base)
    write_json(tmp_path / "metrics/steered.json", steered)
    cache = {
        "forget": {
            "corpus": "forget",
            "n_tokens": 70016,
            "n_sequences": 547,
            "seconds": 151.25,
            "tokens_per_second": 462.9,
            "bytes": 123,
        },
        "retain": {
            "corpus": "retain",
            "n_tokens": 69888,
            "n_sequences": 546,
            "seconds": 149.5,
            "tokens_per_second": 467.5,
            "bytes": 456,
        },
        "layers": [9],
        "total_tokens": 139904,
    }
    write_json(tmp_path / "metrics/cache.json", cache)
    sae = {
        "explained_variance": 0.87125,
        "l0": 31.75,
        "dead_fraction": 0.0625,
        "n_tokens": 13990,
        "eval_split": "held_out",
        "architecture": "topk",
        "d_in": 640,
        "d_sae": 4096,
        "layer": 9,
        "source": "train",
        "train_seconds": 88.5,
    }
    write_json(tmp_path / "metrics/sae.json", sae)
    for family, metrics in (("fewshot", FEWSHOT), ("gcg", GCG), ("generation", GENERATION)):
        write_json(tmp_path / f"metrics/attack_{family}.json", metrics)
    attacks = tmp_path / "data/results/attacks"
    write_json(attacks / "gcg/suffixes.json", GCG_SUFFIXES)
    write_json(attacks / "gcg/losses.json", GCG_LOSSES)
    write_json(attacks / "generation/samples.json", SAMPLES)
    latents = latents_frame()
    (tmp_path / "data/scores").mkdir(parents=True)
    latents.to_parquet(tmp_path / "data/scores/latents.parquet")
    contexts_frame().to_parquet(tmp_path / "data/scores/contexts.parquet")
    selected = select_latents(latents, SelectConfig(top_k=3, retain_threshold=0.01))
    (tmp_path / "data/selection").mkdir(parents=True)
    selected.to_parquet(tmp_path / "data/selection/selected.parquet")
    write_json(
        tmp_path / "data/clamp/summary.json",
        {"mode": "clamp_prime", "layer": 9, "latents": [0, 1, 2], "value": -300.0},
    )
    return tmp_path
