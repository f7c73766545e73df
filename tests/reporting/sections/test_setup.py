"""Setup and SAE quality sections."""

from __future__ import annotations

from sae_unlearn.reporting.inputs import ReportInputs
from sae_unlearn.reporting.sections.setup import sae_section, setup_section


def test_pretrained_sae_and_clamp_rows():
    params = {"model": {"name": "google/gemma-2-2b", "dtype": "bfloat16"}, "sae": {"layer": 7}}
    sae = {"source": "pretrained", "release": "gemma-scope", "sae_id": "layer_7/w16k", "d_sae": 16}
    clamp = {"mode": "refusal_clamp", "latents": [3, 1], "value": -500, "layer": 7, "x": {}}
    setup = setup_section(
        ReportInputs(params=params, sae=sae, clamp=clamp, sources={"cache": "c.json"})
    )
    rows = {r[0]: r[1] for r in setup.table.rows}
    assert rows["model"] == [("code", "google/gemma-2-2b")]
    assert rows["SAE"] == [("code", "gemma-scope / layer_7/w16k")]
    assert rows["hook layer"] == "7" and rows["SAE width (d_sae)"] == "16"
    assert rows["clamped latents"] == "3, 1" and rows["clamp value"] == "-500"
    assert "clamp layer" not in rows and "clamp x" not in rows
    assert setup.params_yaml.startswith("model:\n  name: google/gemma-2-2b\n")
    assert setup.notes == [
        [
            ("", "Not available yet ("),
            ("code", "c.json"),
            ("", " missing); this section is left out."),
        ]
    ]


def test_sae_from_a_path_and_no_params():
    setup = setup_section(ReportInputs(sae={"source": "path", "path": "/m/sae"}, cache={"x": 1}))
    assert dict((r[0], r[1]) for r in setup.table.rows)["SAE"] == [("code", "/m/sae")]
    assert setup.params_yaml is None and setup.notes == []


def test_sae_quality_lists_known_keys_first():
    quality = sae_section(ReportInputs(sae={"d_sae": 8, "l0": 3.5, "extra": [1], "none": None}))
    assert quality.table.rows == [["l0", "3.5000"], ["d_sae", "8"]]
    assert quality.notes[0].startswith("explained variance and L0")
    assert sae_section(ReportInputs()).table is None
