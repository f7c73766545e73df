"""Consolidate data/embedded/{corpus_src,questions_src} into the committed embedded files.

Run from anywhere: `python scripts/build_embedded_data.py`. Output is sorted and deterministic,
so re-running on unchanged sources leaves the committed files byte-identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The script must work without the package installed (e.g. a fresh clone, before `pip install`).
sys.path.insert(0, str(ROOT))

from sae_unlearn.data import DataError, build_embedded  # noqa: E402


def main() -> int:
    embedded = ROOT / "data" / "embedded"
    try:
        counts = build_embedded(embedded, embedded)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{embedded / name}.jsonl: {n} rows")
    if not counts:
        print(f"no sources found under {embedded}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
