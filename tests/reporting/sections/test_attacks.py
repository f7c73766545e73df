"""The attacks section's data: few-shot frame, GCG loss, other metrics, suffixes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.sections.attacks import (
    attacks_section,
    fewshot_frame,
    gcg_wide,
    text_leaves,
)


def test_fewshot_frame_reads_numbers_and_acc_mappings():
    attack = {"fewshot": {"steered": {"4": {"acc": 0.5}, "0": 0.25, "1": "n/a"}, "n": 3}}
    frame = fewshot_frame(attack)
    assert frame["k"].tolist() == [0, 1, 4]
    assert frame["steered"].tolist()[::2] == [0.25, 0.5] and pd.isna(frame["steered"][1])
    assert "baseline" not in frame


def test_gcg_wide_averages_per_step_and_orders_models():
    loss = pd.DataFrame(
        {
            "step": [0, 0, 0, 1, 1],
            "model": ["steered", "steered", "baseline", "steered", "other"],
            "loss": [4.0, 2.0, 1.0, 1.5, 9.0],
        }
    )
    wide = gcg_wide(loss)
    assert list(wide.columns) == ["step", "baseline", "steered", "other"]
    assert wide["steered"].tolist() == [3.0, 1.5]


def test_text_leaves_index_lists():
    data = {"a": ["x", {"b": "y"}], "c": 3, "d": "z"}
    assert text_leaves(data) == [("a[0]", "x"), ("a[1].b", "y"), ("d", "z")]
    assert text_leaves("only") == [("value", "only")]


def test_attacks_section_drops_timings_and_truncates_long_text(tmp_path: Path):
    attack = {"gibberish": {"steered": {"ppl": 12.5, "seconds": 3.0}}, "run_seconds": 2.0}
    inputs = ReportInputs(attack=attack, suffixes={"s": "x" * 12})
    section, data = attacks_section(inputs, ReportOptions(max_text=10), tmp_path, "plots")
    titles = [p.title for p in section.parts]
    assert titles == [
        "Few-shot",
        "GCG suffix",
        "Gibberish",
        "Found suffixes",
    ]
    assert section.parts[2].table.rows == [["steered.ppl", "12.5000"]]
    assert section.parts[3].table.rows == [["s", [("code", "x" * 10 + " …")]]]
    assert data == {}
    missing, _ = attacks_section(ReportInputs(), ReportOptions(), tmp_path, "plots")
    assert missing.parts == [] and missing.notes[0][1] == ("", "attack")


def test_gcg_budget_names_the_run_and_the_papers():
    from sae_unlearn.reporting.sections.attacks import gcg_budget

    light = {"gcg_config": {"num_steps": 10, "search_width": 16, "topk": 64}}
    light["target_questions"] = ["q1", "q2"]
    note = gcg_budget(light)
    assert note.startswith("GCG budget: 10 steps, search width 16, top-k 64 over 2 questions")
    assert "-S attack.gcg.num_steps=500 -S attack.gcg.search_width=64" in note
    paper = {"gcg_config": {"num_steps": 500, "search_width": 64, "topk": 64}}
    assert gcg_budget(paper).endswith("the paper's.")
    assert gcg_budget({"steered": {}}) is None and gcg_budget(None) is None


def test_sample_continuations_are_marked_for_repetition_and_leakage(tmp_path: Path):
    suffixes = {
        "suffixes": {"steered": {"suffix": "x x"}},
        "samples": [
            {
                "question": "Antibiotics kill what?",
                "steered": {
                    "prompt": "Question: Antibiotics kill what?\nAnswer:",
                    "continuation": "\nA.\nA.\nA.",
                    "perplexity": 2.5,
                    "repetitive": True,
                    "names_answer": False,
                },
                "baseline": {
                    "continuation": " Bacteria",
                    "perplexity": 1.5,
                    "repetitive": False,
                    "names_answer": True,
                },
            }
        ],
    }
    inputs = ReportInputs(attack={"fewshot": {}}, suffixes=suffixes)
    section, _ = attacks_section(inputs, ReportOptions(max_text=5), tmp_path, "plots")
    by_title = {p.title: p for p in section.parts}
    rows = by_title["Sample continuations"].table.rows
    assert rows[0] == [
        "Antibiotics kill what?",
        "steered",
        [("code", "⏎A.⏎A …")],  # cut at 5 characters, line breaks shown
        "2.50",
        "yes",
        "no",
    ]
    assert rows[1][1:] == ["baseline", [("code", " Bact …")], "1.50", "no", "yes"]
    # the samples are not repeated among the found suffixes
    assert by_title["Found suffixes"].table.rows == [["suffixes.steered.suffix", [("code", "x x")]]]
