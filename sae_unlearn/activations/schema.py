"""The activation cache's parquet layout: token columns, one vector column per layer, metadata.

Each corpus is a folder of parquet shards (`layout` names them and writes the manifest), one
row per token: `corpus`, `sequence_id`, `position`, `token_id`, `is_special`, and one
fixed-size list column `resid_{L}` per cached layer, stored in the cache's dtype; each shard's
metadata (under `METADATA_KEY`) records model, layers, width, corpus and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from sae_unlearn.choices import CACHE_DTYPES
from sae_unlearn.errors import UserError

TOKEN_COLUMNS = ["corpus", "sequence_id", "position", "token_id", "is_special"]
# The corpora a run caches, one folder each (`{corpus}/`): the question roles' corpora.
# forget and retain always; retain_near (benign text next to forget) when it was prepared.
CORPORA = ("forget", "retain", "retain_near")
REQUIRED_CORPORA = ("forget", "retain")
METADATA_KEY = b"sae_unlearn"

# Arrow (and parquet) have no bfloat16 type, so bfloat16 is stored as its raw 16 bits in a
# uint16 column: the same two bytes a token-dimension, read back exactly by reinterpreting
# them (`decode_vectors`). float16 is a native arrow and parquet (Float16) type.
_ARROW_TYPES = {"float32": pa.float32(), "float16": pa.float16(), "bfloat16": pa.uint16()}
_TORCH_TYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resid_column(layer: int) -> str:
    return f"resid_{layer}"


def check_dtype(dtype: str, what: str = "cache.dtype") -> str:
    if dtype not in CACHE_DTYPES:
        raise UserError(f"{what}={dtype!r} is not a cache dtype; use one of {list(CACHE_DTYPES)}")
    return dtype


def bytes_per_value(dtype: str) -> int:
    return 4 if check_dtype(dtype) == "float32" else 2


def cache_schema(layers: Sequence[int], d_model: int, dtype: str = "float32") -> pa.Schema:
    value = _ARROW_TYPES[check_dtype(dtype)]
    fields = [
        pa.field("corpus", pa.string()),
        pa.field("sequence_id", pa.int32()),
        pa.field("position", pa.int32()),
        pa.field("token_id", pa.int32()),
        pa.field("is_special", pa.bool_()),
    ]
    fields += [pa.field(resid_column(layer), pa.list_(value, d_model)) for layer in layers]
    return pa.schema(fields)


def vector_array(
    array: np.ndarray | torch.Tensor, d_model: int, dtype: str = "float32"
) -> pa.FixedSizeListArray:
    """`[n, d_model]` vectors as the cache stores them in `dtype` (rounded to nearest)."""
    values = torch.as_tensor(array).to(_TORCH_TYPES[check_dtype(dtype)]).reshape(-1)
    if dtype == "bfloat16":
        flat = values.view(torch.int16).numpy().view(np.uint16)  # the raw bits, see above
    else:
        flat = values.numpy()
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(flat)), d_model)


def decode_vectors(column: pa.ChunkedArray | pa.Array, n: int, dtype: str) -> torch.Tensor:
    """A stored vector column as a `[n, d]` float32 tensor, whatever the storage dtype."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    if check_dtype(dtype) == "bfloat16":
        values = torch.from_numpy(flat.view(np.int16).copy()).view(torch.bfloat16)
    else:
        values = torch.from_numpy(flat.copy())
    return values.reshape(n, -1).float()
