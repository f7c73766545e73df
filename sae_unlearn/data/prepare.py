"""The prepare-data step: load every input, validate it all, then write the prepared parquet.

Layout under the output folder (`sae_unlearn.prepared`): `corpora/{role}_corpus.parquet`
and `questions/{role}_questions.parquet` for forget and retain, and for retain_near when its
spec is not `none`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sae_unlearn.data.schema import ALL_ROLES, ROLES, DataError
from sae_unlearn.data.sources import NONE, PAPER_MMLU_SUBJECTS, load_corpus, load_questions
from sae_unlearn.io import atomic_dir, write_parquet
from sae_unlearn.prepared import KINDS, prepared_path


@dataclass(frozen=True)
class DataConfig:
    forget_corpus: str = "embedded"
    retain_corpus: str = "embedded"
    forget_questions: str = "embedded"
    retain_questions: str = "embedded"
    # Optional role: `none` leaves it out (no file written, nothing scored).
    retain_near_corpus: str = "embedded"
    retain_near_questions: str = "embedded"
    mmlu_subjects: tuple[str, ...] = PAPER_MMLU_SUBJECTS
    wikitext_config: str = "wikitext-2-raw-v1"
    max_documents: int | None = None
    embedded_dir: str | None = None

    def spec(self, role: str, kind: str) -> str:
        return str(getattr(self, f"{role}_{kind}"))


@dataclass
class DataSummary:
    documents: dict[str, int] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    questions: dict[str, dict[str, int]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"{role} corpus: {self.documents[role]} documents, {self.words[role]} words"
            for role in self.documents
        ]
        for role, by_subject in self.questions.items():
            total = sum(by_subject.values())
            parts = ", ".join(f"{s} {n}" for s, n in by_subject.items())
            out.append(f"{role} questions: {total} ({parts})")
        return out


def prepared_paths(out_dir: str | Path, roles: tuple[str, ...] = ALL_ROLES) -> dict[str, Path]:
    return {
        f"{role}_{kind}": prepared_path(out_dir, role, kind) for role in roles for kind in KINDS
    }


def _load(cfg: DataConfig, role: str, kind: str) -> pd.DataFrame:
    spec = cfg.spec(role, kind)
    if kind == "corpus":
        return load_corpus(
            spec,
            role,
            wikitext_config=cfg.wikitext_config,
            embedded_dir=cfg.embedded_dir,
            max_documents=cfg.max_documents,
        )
    return load_questions(
        spec, role, mmlu_subjects=cfg.mmlu_subjects, embedded_dir=cfg.embedded_dir
    )


def prepare_data(cfg: DataConfig, out_dir: str | Path) -> DataSummary:
    """Load, validate and write the prepared parquet files; return their counts.

    Everything is loaded and validated before the first write, and the whole folder is
    replaced in one step, so a bad input or an interrupted run leaves the previous outputs
    rather than a mix of old and new files. A `none` spec writes nothing.
    """
    for role in ROLES:
        for kind in KINDS:
            if cfg.spec(role, kind) == NONE:
                raise DataError(
                    f"data.{role}_{kind} is `none`, but the {role} role is required. Fix: "
                    f"name its {kind} (`embedded`, a hub source or a file in inputs/data/)."
                )
    wanted = [(r, k) for r in ALL_ROLES for k in KINDS if cfg.spec(r, k) != NONE]
    frames = {(role, kind): _load(cfg, role, kind) for role, kind in wanted}
    summary = DataSummary()
    with atomic_dir(out_dir) as tmp:
        for role, kind in wanted:
            frame = frames[(role, kind)]
            write_parquet(prepared_path(tmp, role, kind), frame)
            if kind == "corpus":
                summary.documents[role] = len(frame)
                summary.words[role] = int(sum(len(t.split()) for t in frame["text"]))
            else:
                summary.questions[role] = dict(sorted(Counter(frame["subject"]).items()))
    return summary
