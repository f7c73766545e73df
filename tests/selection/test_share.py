"""tau of the token-share gate, on a hand-made cache whose trigger shares are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.activations.layout import describe_shard, shard_name, write_manifest
from sae_unlearn.activations.schema import METADATA_KEY, cache_schema, vector_array
from sae_unlearn.selection.share import calibrate_tau, chunk_shares, token_triggers

LAYER, D = 3, 4
GATED, THRESHOLDS = [2, 0], [0.5, 0.7]


def identity_sae() -> StandardSAE:
    """f = relu(x): latent i is the residual's coordinate i."""
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=D, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(D))
        sae.W_dec.copy_(torch.eye(D))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def write_cache(path: Path, sequences: list[list[int]]) -> None:
    """One BOS (special, firing hard) per sequence, then a token per entry: 1 a trigger
    (latent 2 at 0.9, or latent 0 at 0.8), 0 not (latent 0 at 0.6 and latent 2 at 0.4,
    under their thresholds, and the ungated latent 1 at 9). Rows are written in reverse,
    over several row groups, so the reader must order them."""
    rows = []
    for seq, triggers in enumerate(sequences):
        rows.append((seq, 0, True, [9.0, 9.0, 9.0, 9.0]))
        for pos, trigger in enumerate(triggers, start=1):
            calm = [0.6, 9.0, 0.4, 0.0]
            vec = ([0.0, 0.0, 0.9, 0.0] if pos % 2 else [0.8, 0.0, 0.0, 0.0]) if trigger else calm
            rows.append((seq, pos, False, vec))
    rows.reverse()
    table = pa.table(
        {
            "corpus": ["retain"] * len(rows),
            "sequence_id": pa.array([r[0] for r in rows], pa.int32()),
            "position": pa.array([r[1] for r in rows], pa.int32()),
            "token_id": pa.array([7] * len(rows), pa.int32()),
            "is_special": [r[2] for r in rows],
            f"resid_{LAYER}": vector_array(np.array([r[3] for r in rows]), D),
        },
        schema=cache_schema([LAYER], D),
    )
    meta = {"layers": [LAYER], "d_model": D, "model": "hand-made", "dtype": "float32"}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    path.mkdir(parents=True)
    pq.write_table(table, path / shard_name(0), row_group_size=3)
    n_seq = len(sequences)
    write_manifest(path, meta, [describe_shard(path / shard_name(0), len(rows), 0, n_seq)])


def test_chunk_shares_keep_a_long_enough_last_chunk():
    assert chunk_shares(np.array([1, 0, 0, 1, 1, 0, 0, 1, 0]), 4).tolist() == [0.5, 0.5]
    assert chunk_shares(np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 1]), 4).tolist() == [0.5, 0.5, 1.0]
    assert chunk_shares(np.array([1, 1, 0]), 4).tolist() == [2 / 3]  # the only chunk
    assert chunk_shares(np.zeros(0), 4).tolist() == []


def test_tau_is_the_quantile_of_pooled_chunk_shares(tmp_path):
    sae = identity_sae()
    retain, near = tmp_path / "retain", tmp_path / "retain_near"
    # retain, sequences concatenated: 1 0 0 1 1 | 0 0 1 0 -> chunks of 4: 0.5, 0.5 (the last
    # token alone is under half a chunk); retain_near: 1 1 1, its only chunk: 1.0.
    write_cache(retain, [[1, 0, 0, 1, 1], [0, 0, 1, 0]])
    write_cache(near, [[1, 1, 1]])
    triggers = token_triggers(sae, retain, LAYER, GATED, THRESHOLDS)
    assert triggers.tolist() == [True, False, False, True, True, False, False, True, False]
    # Pooled shares sorted: 0.5, 0.5, 1.0; the 0.95 quantile sits 1.9 of the way along:
    # 0.5 + 0.9 * (1.0 - 0.5) = 0.95.
    tau = calibrate_tau(sae, [retain, near], LAYER, GATED, THRESHOLDS, chunk=4, quantile=0.95)
    assert tau == pytest.approx(0.95, abs=1e-12)
    assert (
        calibrate_tau(sae, [retain, near], LAYER, GATED, THRESHOLDS, chunk=4, quantile=0.5) == 0.5
    )
    assert calibrate_tau(sae, [retain], LAYER, GATED, THRESHOLDS, chunk=4) == 0.5
    # The whole retain corpus as one chunk (9 tokens, 4 triggers), run twice: deterministic.
    for _ in range(2):
        assert calibrate_tau(sae, [retain], LAYER, GATED, THRESHOLDS, chunk=16) == 4 / 9


def test_bad_calibration_inputs_named(tmp_path):
    sae = identity_sae()
    path = tmp_path / "retain"
    write_cache(path, [[1, 0]])
    with pytest.raises(ValueError, match="not sae.layer=5"):
        calibrate_tau(sae, [path], 5, GATED, THRESHOLDS)
    with pytest.raises(ValueError, match="quantile=1.5"):
        calibrate_tau(sae, [path], LAYER, GATED, THRESHOLDS, quantile=1.5)
