"""Atomic outputs: a file or a whole folder is the old one or the new one, never a mix, even
when the writing process is killed (SIGKILL) at any point."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sae_unlearn.io import atomic_dir, atomic_path, write_text

# Writes three files into `target` through atomic_dir, slowly, saying when each is written.
WRITER = """
import sys, time
from pathlib import Path
from sae_unlearn.io import atomic_dir
target = Path(sys.argv[1])
with atomic_dir(target) as tmp:
    for name in ("a", "b", "c"):
        (tmp / name).write_text("new")
        print(name, flush=True)
        time.sleep(0.3)
print("done", flush=True)
time.sleep(5)
"""


def folder(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


@pytest.mark.parametrize("after", ["a", "b", "c", "done"])
def test_a_killed_writer_leaves_the_old_folder_or_the_new_one(tmp_path, after):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("old")
    (target / "stale").write_text("old")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        if line.strip() == after:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    expected = (
        {"a": "new", "b": "new", "c": "new"} if after == "done" else {"a": "old", "stale": "old"}
    )
    assert folder(target) == expected
    # What a killed run leaves is a hidden sibling, never a file inside the output.
    assert all(not p.name.endswith(".tmp") for p in target.iterdir())
    # A rerun completes and replaces everything, the leftovers of the killed run included.
    with atomic_dir(target) as tmp:
        (tmp / "z").write_text("rerun")
    assert folder(target) == {"z": "rerun"}


def test_atomic_path_replaces_a_file_without_deleting_it_first(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    target.write_text("old")
    seen = []
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        seen.append(self)
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    write_text(target, "new")
    assert target.read_text() == "new" and target not in seen


def test_a_failed_block_leaves_the_old_output(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("interrupted")
    assert folder(target) == {"a": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not (tmp_path / "f.txt").exists()
