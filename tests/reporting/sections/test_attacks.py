"""The attacks section's data: few-shot frame, GCG losses, the generation check, samples,
suffixes."""

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
    fewshot = {"steered": {"k=4": {"acc": 0.5}, "k=0": 0.25, "k=1": "n/a"}, "n": 3}
    frame = fewshot_frame(fewshot)
    assert frame["k"].tolist() == [0, 1, 4]
    assert frame["steered"].tolist()[::2] == [0.25, 0.5] and pd.isna(frame["steered"][1])
    assert "baseline" not in frame


def test_gcg_wide_pads_shorter_runs_and_orders_models():
    losses = {"other": [9.0], "steered": [4.0, 2.0, 1.5], "baseline": [1.0, 0.5]}
    wide = gcg_wide(losses)
    assert list(wide.columns) == ["step", "baseline", "steered", "other"]
    assert wide["step"].tolist() == [0, 1, 2]  # index 0: the initial loss
    assert wide["steered"].tolist() == [4.0, 2.0, 1.5]
    assert wide["baseline"].tolist()[:2] == [1.0, 0.5] and pd.isna(wide["baseline"][2])
    assert gcg_wide({}).empty


def test_text_leaves_index_lists():
    data = {"a": ["x", {"b": "y"}], "c": 3, "d": "z"}
    assert text_leaves(data) == [("a[0]", "x"), ("a[1].b", "y"), ("d", "z")]
    assert text_leaves("only") == [("value", "only")]


def test_attacks_section_drops_timings_and_truncates_long_text(tmp_path: Path):
    generation = {"fluency": {"steered": {"plain": {"ppl_median": 12.5, "seconds": 3.0}}}}
    families = {"gcg": {"n": 68}, "generation": generation | {"run_seconds": 2.0}}
    inputs = ReportInputs(attack_families=families, gcg_suffixes={"s": "x" * 12})
    section, data = attacks_section(inputs, ReportOptions(max_text=10), tmp_path, "plots")
    titles = [p.title for p in section.parts]
    assert titles == ["GCG suffix", "Generation", "Found suffixes"]
    assert section.parts[1].table.rows == [["fluency.steered.plain.ppl_median", "12.5000"]]
    assert section.parts[2].table.rows == [["s", [("code", "x" * 10 + " …")]]]
    assert data == {}
    missing, _ = attacks_section(ReportInputs(), ReportOptions(), tmp_path, "plots")
    assert missing.parts == [] and missing.notes == []


def test_attacks_section_names_missing_family_files(tmp_path: Path):
    sources = {
        "attack_gcg": "metrics/attack_gcg.json",
        "attack_fewshot": "metrics/attack_fewshot.json",
        "gcg_losses": "data/results/attacks/gcg/losses.json",
    }
    inputs = ReportInputs(gcg_losses={"steered": [2.0, 1.0]}, sources=sources)
    section, data = attacks_section(inputs, ReportOptions(), tmp_path, "plots")
    assert [n[1] for n in section.notes] == [
        ("code", "metrics/attack_fewshot.json"),
        ("code", "metrics/attack_gcg.json"),
    ]
    # The losses alone still draw their curve, and the GCG part names the metrics file.
    (gcg,) = section.parts
    assert gcg.title == "GCG suffix" and gcg.table is None
    assert gcg.notes[0][1] == ("code", "metrics/attack_gcg.json")
    assert data["gcg_loss.csv"]["steered"].tolist() == [2.0, 1.0]


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
    samples = {
        "steered": [
            {
                "question": "Antibiotics kill what?",
                "plain": {
                    "prompt": "Question: Antibiotics kill what?\nAnswer:",
                    "continuation": "\nA.\nA.\nA.",
                    "perplexity": 2.5,
                    "distinct_2": 0.25,
                    "longest_repeat": 4,
                    "repetitive": True,
                    "names_answer": False,
                },
            }
        ],
        "baseline": [
            {
                "question": "Antibiotics kill what?",
                "suffix": {
                    "continuation": " Bacteria",
                    "perplexity": 1.5,
                    "repetitive": False,
                    "names_answer": True,
                },
            },
            {"question": "Aardvarks eat what?", "plain": {"continuation": " Ants"}},
        ],
    }
    gcg_suffixes = {"suffixes": {"steered": {"suffix": "x x", "token_ids": [1, 1]}}}
    families = {"gcg": {"n": 68}}
    inputs = ReportInputs(attack_families=families, gcg_suffixes=gcg_suffixes, samples=samples)
    section, _ = attacks_section(inputs, ReportOptions(max_text=5), tmp_path, "plots")
    by_title = {p.title: p for p in section.parts}
    rows = by_title["Sample continuations"].table.rows
    # By question; within one, in the file's order: "<model> <setting>".
    assert [r[:2] for r in rows] == [
        ["Aardvarks eat what?", "baseline plain"],
        ["Antibiotics kill what?", "steered plain"],
        ["Antibiotics kill what?", "baseline suffix"],
    ]
    assert rows[1] == [
        "Antibiotics kill what?",
        "steered plain",
        [("code", "⏎A.⏎A …")],  # cut at 5 characters, line breaks shown
        "2.50",
        "yes",
        "no",
    ]
    assert rows[2][1:] == ["baseline suffix", [("code", " Bact …")], "1.50", "no", "yes"]
    assert rows[0][3:] == ["–", "–", "–"]
    # only the suffixes' text is listed among the found suffixes
    assert by_title["Found suffixes"].table.rows == [["suffixes.steered.suffix", [("code", "x x")]]]
