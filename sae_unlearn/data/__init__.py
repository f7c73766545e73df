"""Corpora and multiple-choice question sets of each role (forget, retain, and the optional
retain_near): schema, readers, sources, prepare, dev/test splits.

- `schema`: the prepared columns, validation and normalisation (`DataError`).
- `readers`: local jsonl/json/csv/txt/parquet files as frames of records.
- `embedded`: where the embedded files shipped as package data are.
- `sources`: loaders for `embedded`, the hub (wmdp-bio, mmlu, mmlu-bio, wikitext) and local files.
- `prepare`: the prepare-data step (`DataConfig`, `prepare_data`).
- `splits`: the dev/test half of each question, by a hash of its text.
- `build`: repository tooling that builds the embedded files from their sources.
"""

from sae_unlearn.data.build import build_embedded
from sae_unlearn.data.embedded import embedded_file, embedded_root
from sae_unlearn.data.prepare import (
    DataConfig,
    DataSummary,
    prepare_data,
    prepared_path,
    prepared_paths,
)
from sae_unlearn.data.readers import (
    CORPUS_SUFFIXES,
    QUESTION_SUFFIXES,
    read_records,
    records_frame,
)
from sae_unlearn.data.schema import (
    ALL_ROLES,
    CORPUS_COLUMNS,
    N_CHOICES,
    OPTIONAL_ROLES,
    QUESTION_COLUMNS,
    ROLES,
    DataError,
    normalise_corpus,
    normalise_questions,
    validate_corpus,
    validate_questions,
)
from sae_unlearn.data.sources import (
    MMLU_BIO,
    MMLU_BIO_SUBJECTS,
    MMLU_REPO,
    NONE,
    PAPER_MMLU_SUBJECTS,
    WIKITEXT_REPO,
    WMDP_BIO_CONFIG,
    WMDP_BIO_SUBJECT,
    WMDP_REPO,
    load_corpus,
    load_questions,
    read_question_file,
    split_wikitext,
)
from sae_unlearn.data.splits import (
    SPLITS,
    normalise_question_text,
    question_split,
    question_splits,
)

__all__ = [
    "ALL_ROLES",
    "CORPUS_COLUMNS",
    "CORPUS_SUFFIXES",
    "MMLU_BIO",
    "MMLU_BIO_SUBJECTS",
    "MMLU_REPO",
    "NONE",
    "N_CHOICES",
    "OPTIONAL_ROLES",
    "PAPER_MMLU_SUBJECTS",
    "QUESTION_COLUMNS",
    "QUESTION_SUFFIXES",
    "ROLES",
    "SPLITS",
    "WIKITEXT_REPO",
    "WMDP_BIO_CONFIG",
    "WMDP_BIO_SUBJECT",
    "WMDP_REPO",
    "DataConfig",
    "DataError",
    "DataSummary",
    "build_embedded",
    "embedded_file",
    "embedded_root",
    "load_corpus",
    "load_questions",
    "read_question_file",
    "normalise_corpus",
    "normalise_question_text",
    "normalise_questions",
    "prepare_data",
    "prepared_path",
    "prepared_paths",
    "question_split",
    "question_splits",
    "read_records",
    "records_frame",
    "split_wikitext",
    "validate_corpus",
    "validate_questions",
]
