import pytest

from sae_unlearn.evaluation.config import EvalConfig


def test_bad_format_rejected():
    with pytest.raises(ValueError, match="evaluate.format='mc'"):
        EvalConfig(format="mc")
