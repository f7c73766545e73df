"""Hugging Face datasets (`datasets.load_dataset`), with the hub's failures as UserErrors:
no network and no cached copy, a config the cache or the hub does not have, and MMLU subjects
checked against MMLU's own list before anything is fetched.
"""

from __future__ import annotations

import difflib
from typing import Any

from sae_unlearn.data.schema import DataError

# cais/mmlu's 57 subject configs (Hendrycks et al. 2021; one config per subject).
MMLU_SUBJECTS = frozenset(
    """abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology
    college_chemistry college_computer_science college_mathematics college_medicine
    college_physics computer_security conceptual_physics econometrics electrical_engineering
    elementary_mathematics formal_logic global_facts high_school_biology high_school_chemistry
    high_school_computer_science high_school_european_history high_school_geography
    high_school_government_and_politics high_school_macroeconomics high_school_mathematics
    high_school_microeconomics high_school_physics high_school_psychology
    high_school_statistics high_school_us_history high_school_world_history human_aging
    human_sexuality international_law jurisprudence logical_fallacies machine_learning
    management marketing medical_genetics miscellaneous moral_disputes moral_scenarios
    nutrition philosophy prehistory professional_accounting professional_law
    professional_medicine professional_psychology public_relations security_studies sociology
    us_foreign_policy virology world_religions""".split()
)

FILE_FIX = "or download it yourself and point the data.* key at a local file in inputs/data/"


def check_mmlu_subjects(subjects: list[str]) -> None:
    unknown = [s for s in subjects if s not in MMLU_SUBJECTS]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(MMLU_SUBJECTS), n=2, cutoff=0.6)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    raise DataError(
        f"data.mmlu_subjects: {', '.join(hints)} is not one of cais/mmlu's "
        f"{len(MMLU_SUBJECTS)} subjects (e.g. high_school_us_history, college_biology). "
        "Fix: use the subject names as cais/mmlu spells them (lower case, underscores)."
    )


def load_hub(repo: str, config: str, split: str) -> list[dict[str, Any]]:
    """The rows of one config and split of a hub dataset, from the hub or the datasets cache."""
    # Imported late: `datasets` is slow to import and only hub specs need it.
    import datasets

    where = f"{repo} (config {config}, split {split})"
    try:
        return datasets.load_dataset(repo, config, split=split).to_list()
    except ConnectionError as exc:
        # Offline (HF_HUB_OFFLINE) or no network, and nothing cached for this dataset.
        raise DataError(
            f"{where}: the Hugging Face hub cannot be reached and no copy is cached in "
            f"{datasets.config.HF_DATASETS_CACHE} ({str(exc).splitlines()[0]}). Fix: run "
            f"once with network access (HF_HUB_OFFLINE unset) to cache it, {FILE_FIX}."
        ) from None
    except ValueError as exc:
        # The cache, or the hub, has the dataset but not this config or split; `datasets`
        # names the ones that exist ("Available configs in the cache: [...]").
        text = " ".join(str(exc).split())
        if "config" not in text.lower() and "split" not in text.lower():
            raise
        raise DataError(f"{where}: {text}. Fix: use a config and split that exist.") from None
