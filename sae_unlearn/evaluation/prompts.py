"""The one prompt builder, exactly lm-evaluation-harness' multiple-choice formats.

- `letter` (lm-eval `wmdp_bio` / `mmlu_*`): a subject description, the question, lettered
  choices and "Answer:", scored by the log-likelihood of " A".." D".
- `cloze` (lm-eval `arc_easy`): "Question: {q}\\nAnswer:" scored by the log-likelihood of
  " {choice}".

Evaluation, few-shot examples, GCG's prompt split and the generation prompts all build
their text here. `template="qa"` ("Q: ...\nA:") is not lm-eval's: it is the evasion
attack's other template, a wording a user might type instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

LETTERS = ("A", "B", "C", "D")
SUBJECT_NAMES = {"wmdp_bio": "biology", "wmdp-bio": "biology"}
# Stands in for an attack suffix while a prompt is split around it.
_SUFFIX_MARKER = "\x00SUFFIX\x00"
# Per template and format: the label before the question and the one the answer follows.
TEMPLATES = {
    "lm-eval": {"cloze": ("Question: ", "Answer:"), "letter": ("", "Answer:")},
    "qa": {"cloze": ("Q: ", "A:"), "letter": ("Q: ", "A:")},
}


def subject_description(subject: str) -> str:
    name = SUBJECT_NAMES.get(subject, subject.replace("_", " "))
    return f"The following are multiple choice questions (with answers) about {name}.\n\n"


def task_description(subject: str, fmt: str) -> str:
    """What goes before everything else: the subject description in letter format only."""
    return subject_description(subject) if fmt == "letter" else ""


def question_body(
    question: str, choices: Sequence[str], fmt: str, template: str = "lm-eval"
) -> str:
    label = TEMPLATES[template][fmt][0]
    if fmt == "letter":
        lines = [label + question.strip()]
        lines += [f"{L}. {c}" for L, c in zip(LETTERS, choices, strict=True)]
        return "\n".join(lines)
    return f"{label}{question.strip()}"


def format_prompt(
    question: str, choices: Sequence[str], fmt: str, suffix: str = "", template: str = "lm-eval"
) -> str:
    """The prompt up to and including "Answer:"; `suffix` (an attack string) goes just before."""
    body = question_body(question, choices, fmt, template)
    if suffix:
        body = f"{body} {suffix}"
    return f"{body}\n{TEMPLATES[template][fmt][1]}"


def answer_choices(choices: Sequence[str], fmt: str) -> tuple[str, ...]:
    """What lm-eval's `doc_to_choice` gives: the letters in letter format, else the texts.
    Their lengths in characters are what `acc_norm` divides by."""
    if fmt == "letter":
        return LETTERS[: len(choices)]
    return tuple(choices)


def answer_continuations(choices: Sequence[str], fmt: str) -> tuple[str, ...]:
    """The scored continuations: each answer choice after lm-eval's target delimiter " "."""
    return tuple(f" {c}" for c in answer_choices(choices, fmt))


def target_continuation(choices: Sequence[str], answer: int, fmt: str) -> str:
    return answer_continuations(choices, fmt)[answer]


def solved_examples(shots: pd.DataFrame | None, fmt: str, template: str = "lm-eval") -> str:
    """Few-shot examples, each a prompt, its correct continuation and a blank line."""
    if shots is None:
        return ""
    text = ""
    for ex in shots.itertuples(index=False):
        choices = list(ex.choices)
        text += format_prompt(ex.question, choices, fmt, template=template)
        text += target_continuation(choices, int(ex.answer), fmt) + "\n\n"
    return text


def question_prompt(
    question: str,
    choices: Sequence[str],
    subject: str,
    fmt: str,
    suffix: str = "",
    examples: str = "",
    template: str = "lm-eval",
) -> str:
    """A whole prompt: description, solved `examples` (from `solved_examples`), question."""
    prompt = format_prompt(question, choices, fmt, suffix, template)
    return task_description(subject, fmt) + examples + prompt


def prompt_texts(
    questions: pd.DataFrame,
    fmt: str,
    suffix: str = "",
    fewshot: pd.DataFrame | None = None,
    template: str = "lm-eval",
) -> list[str]:
    """The prompts (up to "Answer:") of `questions`, with `fewshot` rows as solved examples."""
    examples = solved_examples(fewshot, fmt, template)
    return [
        question_prompt(
            row.question, list(row.choices), row.subject, fmt, suffix, examples, template
        )
        for row in questions.itertuples(index=False)
    ]


def split_at_suffix(
    question: str, choices: Sequence[str], subject: str, fmt: str
) -> tuple[str, str]:
    """The prompt's text before and after an attack suffix.

    `format_prompt` writes "{body} {suffix}": the separating space goes with the suffix,
    so it is in neither part.
    """
    text = question_prompt(question, choices, subject, fmt, suffix=_SUFFIX_MARKER)
    before, after = text.split(_SUFFIX_MARKER)
    if not before.endswith(" "):  # pragma: no cover - guarded by format_prompt's contract
        raise ValueError("format_prompt no longer separates the suffix with a space")
    return before[:-1], after
