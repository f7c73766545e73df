from sae_unlearn.evaluation.prompts import (
    format_prompt,
    prompt_texts,
    solved_examples,
    split_at_suffix,
)
from tests.evaluation.helpers import QUESTIONS


def test_suffix_goes_before_answer():
    assert format_prompt("Q?", ["a", "b", "c", "d"], "letter", "sfx").endswith("D. d sfx\nAnswer:")
    assert format_prompt("Q? ", ["a", "b", "c", "d"], "cloze") == "Question: Q?\nAnswer:"


def test_prompt_texts_letter_and_cloze():
    row = QUESTIONS.iloc[[2]]
    assert prompt_texts(row, "cloze", suffix="zz") == [
        "Question: What do B cells make? zz\nAnswer:"
    ]
    assert prompt_texts(row, "letter") == [
        "The following are multiple choice questions (with answers) about immunology.\n\n"
        "What do B cells make?\nA. antibodies\nB. bones\nC. hair\nD. sugar\nAnswer:"
    ]


def test_solved_examples_end_with_the_answer_and_a_blank_line():
    shots = QUESTIONS.iloc[[1]]
    assert solved_examples(shots, "letter") == (
        "What is the capital of France?\nA. Paris\nB. Berlin\nC. Madrid\nD. Rome\nAnswer: A\n\n"
    )
    assert solved_examples(None, "cloze") == ""


def test_split_at_suffix_leaves_the_space_to_the_suffix():
    before, after = split_at_suffix("Who wrote Hamlet?", ["w", "x", "y", "z"], "wmdp_bio", "letter")
    assert before == (
        "The following are multiple choice questions (with answers) about biology.\n\n"
        "Who wrote Hamlet?\nA. w\nB. x\nC. y\nD. z"
    )
    assert after == "\nAnswer:"
    before, after = split_at_suffix("Who wrote Hamlet?", ["w", "x", "y", "z"], "arts", "cloze")
    assert (before, after) == ("Question: Who wrote Hamlet?", "\nAnswer:")
