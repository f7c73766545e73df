"""Consolidate data/embedded_src/{corpus,questions} into the package's embedded files.

Run from anywhere: `python scripts/build_embedded_data.py`. The output, the committed package
data in sae_unlearn/data/embedded/, is sorted and deterministic, so re-running on unchanged
sources leaves it byte-identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The script must work without the package installed (e.g. a fresh clone, before `pip install`).
sys.path.insert(0, str(ROOT))

from sae_unlearn.data.build import build_embedded  # noqa: E402
from sae_unlearn.data.schema import DataError  # noqa: E402

SOURCES = ROOT / "data" / "embedded_src"
EMBEDDED = ROOT / "sae_unlearn" / "data" / "embedded"


def main() -> int:
    try:
        counts = build_embedded(SOURCES, EMBEDDED)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{EMBEDDED / name}.jsonl: {n} rows")
    if not counts:
        print(f"no sources found under {SOURCES}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
