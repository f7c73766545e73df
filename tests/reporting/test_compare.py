"""Comparison of experiments: Pareto front, the table, and the `compare` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import compare
from sae_unlearn.reporting.compare import (
    Experiment,
    comparison_markdown,
    comparison_table,
    pareto_front,
    seed_spread,
    unlearning_score,
)
from tests.reporting.helpers import evaluation_metrics, md_tables, run, write_json

# `dvc exp show --json` of DVC 3.67.1, recorded in a throwaway repo (steered metrics trimmed,
# deps/outs/meta dropped): HEAD "master" (clamp -300, top_k 5), experiments weak (-100),
# strong (-500), top10 (top_k 10), broken (a failed run: DVC still lists stale metrics),
# queued (not run yet: no metrics), and the workspace holding top10's results.
EXP_SHOW = """\
[
 {
  "rev": "workspace",
  "name": null,
  "data": {
   "rev": "workspace",
   "timestamp": null,
   "params": {
    "params.yaml": {
     "data": {
      "model": {"name": "google/gemma-2-2b"},
      "clamp": {"mode": "clamp_prime", "value": -300.0},
      "select": {"top_k": 10}
     }
    }
   },
   "metrics": {
    "metrics/steered.json": {
     "data": {
      "format": "letter",
      "forget": {"acc": 0.4, "n": 100},
      "retain": {"acc": 0.52, "n": 80},
      "alignment": 0.4616,
      "primary_metric": "acc",
      "retain_kept_99": false
     }
    }
   }
  },
  "error": null,
  "experiments": null
 },
 {
  "rev": "17f79497449f770476653f8c2926c91bf251dae3",
  "name": "master",
  "data": {
   "rev": "17f79497449f770476653f8c2926c91bf251dae3",
   "timestamp": "2026-11-25T18:32:52",
   "params": {
    "params.yaml": {
     "data": {
      "model": {"name": "google/gemma-2-2b"},
      "clamp": {"mode": "clamp_prime", "value": -300.0},
      "select": {"top_k": 5}
     }
    }
   },
   "metrics": {
    "metrics/steered.json": {
     "data": {
      "format": "letter",
      "forget": {"acc": 0.3, "n": 100},
      "retain": {"acc": 0.55, "n": 80},
      "alignment": 0.7886,
      "primary_metric": "acc",
      "retain_kept_99": false
     }
    }
   }
  },
  "error": null,
  "experiments": [
   {
    "revs": [
     {
      "rev": "6c9c0179fcefd32302645a1669da2e8904b9c45e",
      "name": "top10",
      "data": {
       "rev": "6c9c0179fcefd32302645a1669da2e8904b9c45e",
       "timestamp": "2026-11-25T18:33:06",
       "params": {
        "params.yaml": {
         "data": {
          "model": {"name": "google/gemma-2-2b"},
          "clamp": {"mode": "clamp_prime", "value": -300.0},
          "select": {"top_k": 10}
         }
        }
       },
       "metrics": {
        "metrics/steered.json": {
         "data": {
          "format": "letter",
          "forget": {"acc": 0.4, "n": 100},
          "retain": {"acc": 0.52, "n": 80},
          "alignment": 0.4616,
          "primary_metric": "acc",
          "retain_kept_99": false
         }
        }
       }
      },
      "error": null,
      "experiments": null
     }
    ],
    "executor": null,
    "name": "top10"
   },
   {
    "revs": [
     {
      "rev": "d373f4392f8898a10c2a42ebc0f4d9ecc9075d63",
      "name": "strong",
      "data": {
       "rev": "d373f4392f8898a10c2a42ebc0f4d9ecc9075d63",
       "timestamp": "2026-11-25T18:32:57",
       "params": {
        "params.yaml": {
         "data": {
          "model": {"name": "google/gemma-2-2b"},
          "clamp": {"mode": "clamp_prime", "value": -500},
          "select": {"top_k": 5}
         }
        }
       },
       "metrics": {
        "metrics/steered.json": {
         "data": {
          "format": "letter",
          "forget": {"acc": 0.28, "n": 100},
          "retain": {"acc": 0.5, "n": 80},
          "alignment": 0.7031,
          "primary_metric": "acc",
          "retain_kept_99": false
         }
        }
       }
      },
      "error": null,
      "experiments": null
     }
    ],
    "executor": null,
    "name": "strong"
   },
   {
    "revs": [
     {
      "rev": "c95645916f83ae0d2e1751ee9ea015be86583950",
      "name": "weak",
      "data": {
       "rev": "c95645916f83ae0d2e1751ee9ea015be86583950",
       "timestamp": "2026-11-25T18:32:54",
       "params": {
        "params.yaml": {
         "data": {
          "model": {"name": "google/gemma-2-2b"},
          "clamp": {"mode": "clamp_prime", "value": -100},
          "select": {"top_k": 5}
         }
        }
       },
       "metrics": {
        "metrics/steered.json": {
         "data": {
          "format": "letter",
          "forget": {"acc": 0.45, "n": 100},
          "retain": {"acc": 0.57, "n": 80},
          "alignment": 0.4,
          "primary_metric": "acc",
          "retain_kept_99": true
         }
        }
       }
      },
      "error": null,
      "experiments": null
     }
    ],
    "executor": null,
    "name": "weak"
   },
   {
    "revs": [
     {
      "rev": "ae2c0295b5847a454622a9caedfd82a69bb9fb1b",
      "name": "broken",
      "data": {
       "rev": "ae2c0295b5847a454622a9caedfd82a69bb9fb1b",
       "timestamp": "2026-11-25T18:33:18",
       "params": {
        "params.yaml": {
         "data": {
          "model": {"name": "google/gemma-2-2b"},
          "clamp": {"mode": "clamp_prime", "value": -999},
          "select": {"top_k": 5}
         }
        }
       },
       "metrics": {
        "metrics/steered.json": {
         "data": {
          "format": "letter",
          "forget": {"acc": 0.4, "n": 100},
          "retain": {"acc": 0.52, "n": 80},
          "alignment": 0.4616,
          "primary_metric": "acc",
          "retain_kept_99": false
         }
        }
       }
      },
      "error": {"msg": "Experiment run failed", "type": ""},
      "experiments": null
     }
    ],
    "executor": {"state": "failed", "name": null},
    "name": "broken"
   },
   {
    "revs": [
     {
      "rev": "5382347e45cd8b80d8a3691429b3fa3c635c4fcb",
      "name": "queued",
      "data": {
       "rev": "5382347e45cd8b80d8a3691429b3fa3c635c4fcb",
       "timestamp": "2026-11-25T18:33:08",
       "params": {
        "params.yaml": {
         "data": {
          "model": {"name": "google/gemma-2-2b"},
          "clamp": {"mode": "clamp_prime", "value": -200},
          "select": {"top_k": 5}
         }
        }
       },
       "metrics": {}
      },
      "error": null,
      "experiments": null
     }
    ],
    "executor": {"state": "queued", "name": "dvc-task"},
    "name": "queued"
   }
  ]
 }
]
"""


def test_pareto_front_by_hand():
    # (forget, retain): C is dominated by A; F by B (same forget, lower retain); A and D tie.
    points = {
        "A": (0.3, 0.8),
        "B": (0.5, 0.9),
        "C": (0.4, 0.7),
        "D": (0.3, 0.8),
        "E": (0.25, 0.5),
        "F": (0.5, 0.85),
    }
    front = pareto_front([p[0] for p in points.values()], [p[1] for p in points.values()])
    assert dict(zip(points, front, strict=True)) == {
        "A": True,
        "B": True,
        "C": False,
        "D": True,
        "E": True,
        "F": False,
    }


def test_compare_reads_recorded_exp_show(project: Path):
    recorded = project / "exp_show.json"
    recorded.write_text(EXP_SHOW)
    result = run(compare.command, ["--exp-json", str(recorded)])
    out = project / "reports/compare"
    table = pd.read_csv(out / "compare.csv")
    # Only the params that differ between the listed experiments.
    assert list(table.columns) == [
        "experiment",
        "rev",
        "clamp.value",
        "select.top_k",
        "metric",
        "forget_acc",
        "retain_acc",
        "alignment",
        "retain_kept_99",
        "pareto",
    ]
    rows = table.set_index("experiment")
    assert sorted(rows.index) == ["master", "strong", "top10", "weak"]
    assert rows.loc["strong", "clamp.value"] == -500 and rows.loc["top10", "select.top_k"] == 10
    assert rows.loc["master", "rev"] == "17f7949"
    assert rows.loc["weak", "forget_acc"] == 0.45 and rows.loc["weak", "retain_acc"] == 0.57
    assert rows.loc["strong", "alignment"] == 0.7031
    # By hand: strong has the lowest forget accuracy, weak the highest retain accuracy,
    # master beats top10 on both (0.30 < 0.40, 0.55 > 0.52) and is beaten by neither.
    assert rows["pareto"].to_dict() == {
        "master": True,
        "top10": False,
        "strong": True,
        "weak": True,
    }
    md = (out / "compare.md").read_text()
    for name in ("master", "strong", "top10", "weak"):
        assert f"| {name} |" in md
    assert "broken: error in dvc exp show (Experiment run failed)" in md
    assert "queued: no forget/retain results" in md
    assert "workspace: same params and results as a listed experiment" in md
    assert "accuracy >= 99% of baseline is 0.4500 (weak)" in md
    assert "Paper reference (gemma-2-2b, refusal-clamp): forget 0.5860 -> 0.2718" in md
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "Pareto front: master, strong, weak" in result.output


def test_compare_keeps_a_workspace_that_differs(project: Path):
    data = json.loads(EXP_SHOW)
    ws = data[0]["data"]["metrics"]["metrics/steered.json"]["data"]
    ws["forget"]["acc"], ws["retain"]["acc"] = 0.26, 0.6
    experiments, skipped = compare.parse_exp_show(data, "metrics/steered.json")
    assert [e.name for e in experiments] == ["workspace", "master", "top10", "strong", "weak"]
    table = comparison_table(experiments)
    # The workspace now dominates everything but weak... and weak too (0.26 < 0.45, 0.6 > 0.57).
    assert table.set_index("experiment")["pareto"].to_dict() == {
        "workspace": True,
        "master": False,
        "top10": False,
        "strong": False,
        "weak": False,
    }


def test_compare_explicit_metrics_files(project: Path):
    base, steered = evaluation_metrics()
    other = json.loads(json.dumps(steered))
    other["forget"]["acc"], other["retain"]["acc"] = 0.5, 0.9
    write_json(project / "runs/b/steered.json", other)
    result = run(
        compare.command,
        ["--metrics", "a=metrics/steered.json", "--metrics", "runs/b/steered.json"],
    )
    table = pd.read_csv(project / "reports/compare/compare.csv").set_index("experiment")
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "forget_acc"] == pytest.approx(steered["forget"]["acc"])
    # a forgets more (0.325 < 0.5), b retains more (0.9 > 0.7875): both on the front.
    assert table["pareto"].tolist() == [True, True]
    assert "Paper reference" not in (project / "reports/compare/compare.md").read_text()
    assert "2 experiments" in result.output


def test_comparison_table_with_one_experiment_has_no_param_columns():
    e = Experiment(
        "only", {"clamp.value": -300.0}, {"forget": {"acc": 0.3}, "retain": {"acc": 0.6}}
    )
    table = comparison_table([e])
    assert list(table.columns) == [
        "experiment",
        "rev",
        "metric",
        "forget_acc",
        "retain_acc",
        "alignment",
        "retain_kept_99",
        "pareto",
    ]
    assert table["pareto"].tolist() == [True]


def test_comparison_markdown_escapes_names_and_lists_skips():
    e = Experiment("a|b *x*", {}, {"forget": {"acc": 0.3}, "retain": {"acc": 0.6}})
    table = comparison_table([e])
    md = comparison_markdown(table, "pareto.png", reference=False, skipped=["q_1: <none>"])
    [(headers, rows)] = md_tables(md)
    assert headers[:2] == ["experiment", "rev"] and rows[0][0] == "a|b *x*"
    assert "- q\\_1: \\<none>" in md
    assert md.startswith("# Experiments\n\n| experiment |") and md.endswith(
        "\n## Skipped\n\n- q\\_1: \\<none>\n"
    )
    assert "![forget vs retain accuracy](pareto.png)" in md


def test_comparison_markdown_without_experiments():
    md = comparison_markdown(pd.DataFrame(), None, reference=True)
    assert md == (
        "# Experiments\n\n_No experiment with steered metrics was found._\n\n"
        "Paper reference (gemma-2-2b, refusal-clamp): forget 0.5860 -> 0.2718, alignment "
        "0.8226 (retain 0.5348 derived from the alignment, not reported).\n"
    )


def known(forget: float | None, retain: float | None, near: float | None = None) -> dict:
    """Steered metrics with known-correct accuracies (None: an older run without them)."""
    metrics: dict = {"forget": {"acc": 0.4}, "retain": {"acc": 0.6}, "alignment": 0.5}
    if forget is not None:
        metrics["forget"]["known_correct"] = {"acc": forget, "n": 50, "share": 0.5}
        metrics["retain"]["known_correct"] = {"acc": retain, "n": 40, "share": 0.5}
    if near is not None:
        metrics["retain_near"] = {"acc": near}
        metrics["alignment_near"] = 0.25
    return metrics


def test_saebench_unlearning_score_by_hand():
    experiments = [
        Experiment("kept", {}, known(0.2, 1.0)),
        Experiment("breaks_retain", {}, known(0.1, 0.98)),  # forgets more, but retain < 0.99
        Experiment("at_the_line", {}, known(0.3, 0.99)),
        Experiment("old_run", {}, known(None, None, near=0.7)),
    ]
    table = comparison_table(experiments)
    assert list(table.columns) == [
        "experiment",
        "rev",
        "metric",
        "forget_acc",
        "retain_acc",
        "alignment",
        "retain_kept_99",
        "retain_near_acc",
        "alignment_near",
        "forget_known_acc",
        "retain_known_acc",
        "pareto",
        "pareto_near",
    ]
    rows = table.set_index("experiment")
    assert rows.loc["old_run", "retain_near_acc"] == 0.7
    assert np.isnan(rows.loc["kept", "retain_near_acc"])
    assert np.isnan(rows.loc["old_run", "forget_known_acc"])
    # 1 - the lowest forget known-correct accuracy among kept and at_the_line: 1 - 0.2.
    assert unlearning_score(table) == (pytest.approx(0.8), "kept")
    md = comparison_markdown(table, None, reference=False)
    assert "SAEBench unlearning score: 0.8000 (kept)" in md
    # No experiment keeps retain: SAEBench's score is 0.
    assert unlearning_score(comparison_table([experiments[1]])) == (0.0, None)
    # Without known-correct metrics there is no score, and today's columns only.
    old = comparison_table([Experiment("a", {}, known(None, None))])
    assert unlearning_score(old) is None
    assert "forget_known_acc" not in old.columns and "retain_near_acc" not in old.columns


def test_compare_prints_the_unlearning_score(project: Path):
    write_json(project / "runs/a/steered.json", known(0.25, 0.995))
    write_json(project / "runs/b/steered.json", known(0.05, 0.9))
    result = run(
        compare.command, ["--metrics", "runs/a/steered.json", "--metrics", "runs/b/steered.json"]
    )
    assert "SAEBench unlearning score: 0.7500 (a)" in result.output
    table = pd.read_csv(project / "reports/compare/compare.csv").set_index("experiment")
    assert table.loc["b", "forget_known_acc"] == 0.05


def halves(forget: tuple, retain: tuple, near: tuple) -> dict:
    """Steered metrics whose (all, dev, test) accuracies are given per role."""
    metrics: dict = {"dev": {"alignment": 0.1}, "test": {"alignment": 0.2}, "alignment": 0.3}
    for role, (whole, dev, test) in [("forget", forget), ("retain", retain), ("retain_near", near)]:
        metrics[role] = {"acc": whole, "dev": {"acc": dev}, "test": {"acc": test}}
    return metrics


def test_forget_vs_retain_near_front_and_halves_by_hand():
    experiments = [
        # keeps general knowledge, loses benign biology: on the retain front only
        Experiment("broad", {"select.top_k": 200}, halves((0.2, 0.3, 0.1), (0.9,) * 3, (0.5,) * 3)),
        Experiment("narrow", {"select.top_k": 80}, halves((0.3, 0.2, 0.4), (0.8,) * 3, (0.9,) * 3)),
        Experiment("weak", {"select.top_k": 40}, halves((0.6, 0.6, 0.6), (0.8,) * 3, (0.85,) * 3)),
    ]
    table = comparison_table(experiments).set_index("experiment")
    assert table["pareto"].to_dict() == {"broad": True, "narrow": False, "weak": False}
    assert table["pareto_near"].to_dict() == {"broad": True, "narrow": True, "weak": False}
    dev = comparison_table(experiments, "dev").set_index("experiment")
    assert dev["forget_acc"].to_dict() == {"broad": 0.3, "narrow": 0.2, "weak": 0.6}
    assert dev["alignment"].tolist() == [0.1, 0.1, 0.1]
    test = comparison_table(experiments, "test").set_index("experiment")
    assert test["forget_acc"].to_dict() == {"broad": 0.1, "narrow": 0.4, "weak": 0.6}
    assert test["alignment"].tolist() == [0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match="half"):
        comparison_table(experiments, "train")


def test_seed_spread_by_hand():
    def exp(name, seed, k, forget, near):
        return Experiment(
            name, {"seed": seed, "select.top_k": k}, halves((forget,) * 3, (0.8,) * 3, (near,) * 3)
        )

    table = comparison_table(
        [
            exp("s0", 0, 160, 0.40, 0.90),
            exp("s1", 1, 160, 0.30, 0.94),
            exp("s2", 2, 160, 0.35, 0.92),
            exp("s0_again", 0, 160, 0.99, 0.10),  # seed 0 rerun elsewhere: counted once
            exp("other", 0, 200, 0.20, 0.80),  # one seed only: no spread
        ]
    )
    [row] = seed_spread(table).to_dict("records")
    assert row["setting"] == "select.top_k=160" and row["seeds"] == 3
    assert row["seed values"] == "0 1 2"
    assert row["forget mean"] == pytest.approx(0.35)
    assert row["forget sd"] == pytest.approx(0.05)
    assert (row["forget min"], row["forget max"]) == (0.30, 0.40)
    assert row["retain_near mean"] == pytest.approx(0.92)
    assert row["retain_near sd"] == pytest.approx(0.02)
    assert row["retain sd"] == pytest.approx(0.0)
    md = comparison_markdown(table, "pareto.png", False, near_plot_link="pareto_near.png")
    assert "![forget vs retain_near accuracy](pareto_near.png)" in md
    spread = [t for t in md_tables(md) if t[0][0] == "setting"]
    assert spread[0][1][0][:4] == ["select.top_k=160", "3", "0 1 2", "0.3500"]
    # Without a seed column there is nothing to summarise.
    assert seed_spread(comparison_table([exp("a", 0, 1, 0.1, 0.2)])).empty


def test_compare_writes_the_retain_near_plot_and_reads_a_half(project: Path):
    write_json(project / "runs/a/steered.json", halves((0.2, 0.3, 0.1), (0.9,) * 3, (0.5,) * 3))
    write_json(project / "runs/b/steered.json", halves((0.3, 0.2, 0.4), (0.8,) * 3, (0.9,) * 3))
    args = ["--metrics", "runs/a/steered.json", "--metrics", "runs/b/steered.json"]
    result = run(compare.command, args + ["--half", "dev"])
    out = project / "reports/compare"
    assert (out / "pareto_near.png").stat().st_size > 1000
    # on dev b forgets more and keeps more benign biology than a
    assert "forget vs retain_near front (pareto_near.png): b\n" in result.output
    table = pd.read_csv(out / "compare.csv").set_index("experiment")
    assert table["forget_acc"].to_dict() == {"a": 0.3, "b": 0.2}
    assert "on the dev half" in (out / "compare.md").read_text()
    bad = run(compare.command, args + ["--half", "train"], expect_exit=2)
    assert "--half train" in bad.output


def test_seed_spread_with_a_param_some_experiments_lack():
    """Experiments of an older commit lack a newer param (NaN in the table) and a seed may be
    null: the setting and seed labels still join (a float there once raised a TypeError)."""

    def exp(name, seed, extra, forget):
        params = {"sae.train.seed": seed, "select.top_k": 160}
        if extra is not None:
            params["clamp.gate"] = extra
        return Experiment(name, params, halves((forget,) * 3, (0.8,) * 3, (0.9,) * 3))

    table = comparison_table(
        [exp("s0", None, "window", 0.40), exp("s1", 1, "window", 0.30), exp("old", 2, None, 0.5)]
    )
    rows = seed_spread(table).to_dict("records")
    [row] = [r for r in rows if "window" in r["setting"]]
    assert row["seeds"] == 2 and row["forget mean"] == pytest.approx(0.35)
