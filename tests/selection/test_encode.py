"""Dense encoding: sparse SAE outputs come back dense, on the SAE's device and dtype."""

from __future__ import annotations

import torch
from torch import nn

from sae_unlearn.selection.encode import encode_dense, sae_device


class SparseSAE(nn.Module):
    """Encodes to ReLU(x) as a sparse tensor, as some sae-lens TopK SAEs do."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float64  # cast to the SAE's dtype first
        return torch.relu(x * self.scale).to_sparse()


def test_encode_dense_densifies_and_casts():
    sae = SparseSAE()
    f = encode_dense(sae, torch.tensor([[1.5, -2.0], [0.0, 3.0]], dtype=torch.float32))
    assert not f.is_sparse and f.dtype == torch.float64
    assert f.tolist() == [[1.5, 0.0], [0.0, 3.0]]
    assert sae_device(sae) == torch.device("cpu")
