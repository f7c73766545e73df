"""The activation cache's parquet layout: token columns, one vector column per layer, metadata.

One parquet file per corpus, one row per token: `corpus`, `sequence_id`, `position`,
`token_id`, `is_special`, and one fixed-size float32 list column `resid_{L}` per cached
layer; the file's metadata (under `METADATA_KEY`) records model, layers, width and corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

TOKEN_COLUMNS = ["corpus", "sequence_id", "position", "token_id", "is_special"]
# The corpora a run caches, one file each (`{corpus}.parquet`): the question roles' corpora.
# forget and retain always; retain_near (benign text next to forget) when it was prepared.
CORPORA = ("forget", "retain", "retain_near")
REQUIRED_CORPORA = ("forget", "retain")
METADATA_KEY = b"sae_unlearn"


def resid_column(layer: int) -> str:
    return f"resid_{layer}"


def cache_schema(layers: Sequence[int], d_model: int) -> pa.Schema:
    fields = [
        pa.field("corpus", pa.string()),
        pa.field("sequence_id", pa.int32()),
        pa.field("position", pa.int32()),
        pa.field("token_id", pa.int32()),
        pa.field("is_special", pa.bool_()),
    ]
    fields += [pa.field(resid_column(layer), pa.list_(pa.float32(), d_model)) for layer in layers]
    return pa.schema(fields)


def vector_array(array: np.ndarray, d_model: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(array, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, d_model)
