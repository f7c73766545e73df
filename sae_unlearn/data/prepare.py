"""The prepare-data step: load every input, validate it all, then write four parquet files."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sae_unlearn.data.schema import ROLES
from sae_unlearn.data.sources import PAPER_MMLU_SUBJECTS, load_corpus, load_questions
from sae_unlearn.io import write_parquet


@dataclass(frozen=True)
class DataConfig:
    forget_corpus: str = "embedded"
    retain_corpus: str = "embedded"
    forget_questions: str = "embedded"
    retain_questions: str = "embedded"
    mmlu_subjects: tuple[str, ...] = PAPER_MMLU_SUBJECTS
    wikitext_config: str = "wikitext-2-raw-v1"
    max_documents: int | None = None
    embedded_dir: str | None = None


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


def prepared_paths(out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        f"{role}_{kind}": out / f"{role}_{kind}.parquet"
        for role in ROLES
        for kind in ("corpus", "questions")
    }


def prepare_data(cfg: DataConfig, out_dir: str | Path) -> DataSummary:
    """Load, validate and write the four prepared parquet files; return their counts.

    Everything is loaded and validated before the first write, so a bad input leaves the
    previous outputs untouched rather than a mix of old and new files.
    """
    corpora = {
        role: load_corpus(
            getattr(cfg, f"{role}_corpus"),
            role,
            wikitext_config=cfg.wikitext_config,
            embedded_dir=cfg.embedded_dir,
            max_documents=cfg.max_documents,
        )
        for role in ROLES
    }
    questions = {
        role: load_questions(
            getattr(cfg, f"{role}_questions"),
            role,
            mmlu_subjects=cfg.mmlu_subjects,
            embedded_dir=cfg.embedded_dir,
        )
        for role in ROLES
    }
    paths = prepared_paths(out_dir)
    summary = DataSummary()
    for role in ROLES:
        write_parquet(paths[f"{role}_corpus"], corpora[role])
        write_parquet(paths[f"{role}_questions"], questions[role])
        texts = corpora[role]["text"]
        summary.documents[role] = len(texts)
        summary.words[role] = int(sum(len(t.split()) for t in texts))
        summary.questions[role] = dict(sorted(Counter(questions[role]["subject"]).items()))
    return summary
