"""The SAE directory's files and identity, read without sae-lens (saes/files.py says why)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sae_lens.constants

from sae_unlearn.errors import MissingInputError, UserError
from sae_unlearn.saes.files import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, sae_dir_checked
from sae_unlearn.saes.identity import sae_identity
from tests.saes.samples import gemma_scope_like


def test_the_file_names_are_sae_lens_own():
    assert SAE_CFG_FILENAME == sae_lens.constants.SAE_CFG_FILENAME
    assert SAE_WEIGHTS_FILENAME == sae_lens.constants.SAE_WEIGHTS_FILENAME


def test_identity_reads_the_saved_widths_and_hashes_the_weights(tmp_path):
    sae = gemma_scope_like()
    sae.save_model(tmp_path / "sae")
    identity = sae_identity(sae_dir_checked(tmp_path / "sae"))
    assert (identity["d_in"], identity["d_sae"]) == (sae.cfg.d_in, sae.cfg.d_sae)
    assert len(identity["weights_sha256"]) == 64
    (tmp_path / "sae" / SAE_WEIGHTS_FILENAME).write_bytes(b"other weights")
    assert sae_identity(tmp_path / "sae")["weights_sha256"] != identity["weights_sha256"]


def test_a_bad_config_is_named_with_its_fix(tmp_path):
    gemma_scope_like().save_model(tmp_path / "sae")
    cfg_path = tmp_path / "sae" / SAE_CFG_FILENAME
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "d_sae"}))
    with pytest.raises(UserError, match=r"cfg\.json: `d_sae` is None, not a positive integer"):
        sae_identity(tmp_path / "sae")
    cfg_path.write_text(json.dumps({**cfg, "d_in": "2304"}))
    with pytest.raises(UserError, match="`d_in` is '2304'"):
        sae_identity(tmp_path / "sae")
    cfg_path.write_text("{not json")
    with pytest.raises(UserError, match="SAE config"):
        sae_identity(tmp_path / "sae")
    cfg_path.unlink()
    with pytest.raises(MissingInputError, match="has no cfg.json"):
        sae_dir_checked(tmp_path / "sae")


def test_reading_an_identity_imports_no_torch():
    code = "import sys, sae_unlearn.saes.identity; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
