import pytest

from sae_unlearn.steering import (
    CSV_COLUMNS,
    ClampConfig,
    ClampHook,
    SteeringRow,
    read_steering_csv,
    refusal_clamp,
    validate_rows,
)
from tests.tiny import random_sae


def test_two_edits_of_one_latent_refused_with_their_rows():
    rows = [
        SteeringRow(5, "clamp", None, 0.0, -3.0),
        SteeringRow(6, "add", None, 0.0, 1.0),
        SteeringRow(5, "clamp_cond", None, 1.0, 2.0),
    ]
    with pytest.raises(ValueError, match=r"rows 0 and 2 both edit latent 5 \(clamp, clamp_cond\)"):
        validate_rows(rows)
    with pytest.raises(ValueError, match="rows 0 and 2 both edit latent 5"):
        ClampHook(random_sae("standard"), ClampConfig(0, rows))
    # A refusal clamp edits its refuse_id: a row clamping that latent edits it twice.
    refusal = refusal_clamp(0, [1, 2, 3], 9, 0.05, -5.0).rows
    with pytest.raises(
        ValueError, match=r"rows 0 and 3 both edit latent 9 \(clamp_refusal, clamp\)"
    ):
        validate_rows([*refusal, SteeringRow(9, "clamp", None, 0.0, -1.0)])


def test_one_refusal_group_and_reads_of_an_edited_latent_are_fine():
    refusal = refusal_clamp(0, [1, 2, 3], 9, 0.05, -5.0).rows  # three triggers, one edit
    # Latent 1 triggers the refusal clamp and is itself clamped: one edit of each latent.
    validate_rows([*refusal, SteeringRow(1, "clamp", None, 0.0, -2.0)])
    # `add` rows shift the SAE input, not a latent: they may share a latent with each other
    # and with an edit of it, as in the authors' hooks.
    adds = [SteeringRow(1, "add", None, 0.0, 2.0), SteeringRow(1, "add", None, 0.0, 3.0)]
    validate_rows([*refusal, SteeringRow(1, "clamp", None, 0.0, -2.0), *adds])


def test_steering_csv_with_a_latent_edited_twice_refused(tmp_path):
    path = tmp_path / "twice.csv"
    lines = [
        ",".join(CSV_COLUMNS),
        "7,clamp,,,-300,,,",
        "8,clamp,,,-300,,,",
        "7,clamp_gated,,5,-9,,,",
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"rows 0 and 2 in {path} both edit latent 7"):
        read_steering_csv(path, layer=0)
