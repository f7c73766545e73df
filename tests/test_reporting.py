"""The report (markdown numbers, HTML rendered in headless Chromium) and `compare`."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pipeline import compare, report
from sae_unlearn import reporting
from sae_unlearn.reporting import (
    Experiment,
    comparison_table,
    context_spans,
    find_seconds,
    md_rich,
    pareto_front,
)

# --- fixtures: a small but complete set of stage outputs ----------------------------------

SUBJECTS = {"forget": ["virology", "immunology"], "retain": ["geography", "history", "arts"]}
# Correct answers per (model, role, subject) out of 20 questions each: steering hurts forget.
CORRECT = {
    ("baseline", "forget"): [17, 15],
    ("baseline", "retain"): [16, 14, 18],
    ("steered", "forget"): [6, 7],
    ("steered", "retain"): [16, 13, 17],
}


def _per_question(model: str, role: str) -> pd.DataFrame:
    rows = []
    for subject, k in zip(SUBJECTS[role], CORRECT[(model, role)], strict=True):
        for i in range(20):
            # acc_norm differs from acc on a few questions so the two columns are distinct.
            rows.append({"subject": subject, "correct": i < k, "correct_norm": i < k - (i % 2)})
    return pd.DataFrame(rows)


def _evaluation_metrics() -> tuple[dict, dict]:
    from sae_unlearn.evaluation import accuracy_summary, alignment_score, retention_ratio

    metrics = {}
    for model in reporting.MODELS:
        metrics[model] = {"format": "cloze"}
        for role in reporting.ROLES:
            metrics[model][role] = accuracy_summary(_per_question(model, role), 200, 0)
    base, steered = metrics["baseline"], metrics["steered"]
    f_s, f_b = steered["forget"]["acc"], base["forget"]["acc"]
    r_s, r_b = steered["retain"]["acc"], base["retain"]["acc"]
    # The keys pipeline/evaluate.py's add_alignment writes.
    steered.update(
        alignment=alignment_score(f_s, f_b, r_s, r_b),
        retain_ratio=r_s / r_b,
        forget_ratio=f_s / f_b,
        r_forget=retention_ratio(f_s, f_b),
        r_retain=retention_ratio(r_s, r_b),
        primary_metric="acc",
        retain_kept_99=bool(r_s >= 0.99 * r_b),
    )
    return base, steered


def _latents(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    forget = rng.uniform(0, 0.009, n) * (rng.uniform(size=n) > 0.2)
    retain = rng.uniform(0, 0.05, n) * (rng.uniform(size=n) > 0.3)
    forget[:5] = [0.04, 0.03, 0.02, 0.015, 0.01]  # the forget-specific latents
    retain[:5] = [0.0, 0.001, 0.0005, 0.0, 0.002]
    return pd.DataFrame(
        {
            "latent": np.arange(n, dtype=np.int64),
            "forget_freq": forget,
            "retain_freq": retain,
            "forget_mean": forget * 2,
            "retain_mean": retain * 2,
            "forget_max": forget * 100,
            "retain_max": retain * 100,
        }
    )


CONTEXTS = [
    # latent, corpus, rank, activation, left, token, right
    (0, "forget", 1, 12.5, "the virus | spreads *fast* in", " cells", "\nand `tissues` [x]"),
    (0, "forget", 2, 9.25, "B", " cells", " make antibodies"),
    (0, "forget", 3, 3.0, "low", " rank", " context"),
    (0, "forget", 4, 1.0, "dropped", " beyond", " the limit"),
    (0, "retain", 1, 2.0, "Paris is the", " capital", " of France"),
    (1, "forget", 1, 7.0, "line one", "\n", "line two"),
    (2, "forget", 1, 5.5, "", "Mosquitoes", " spread malaria"),
]


def _contexts() -> pd.DataFrame:
    cols = ["latent", "corpus", "rank", "activation", "left", "token", "right"]
    frame = pd.DataFrame(CONTEXTS, columns=cols)
    frame.insert(1, "ranked_by", "forget_freq")
    frame["sequence_id"], frame["position"], frame["token_id"] = 0, 0, 0
    return frame


ATTACK = {
    "fewshot": {
        "baseline": {"0": 0.8, "1": 0.825, "4": 0.85, "16": 0.875},
        "steered": {"0": 0.325, "1": 0.35, "4": 0.4, "16": 0.45},
    },
    "gcg": {
        "baseline": {"acc": 0.9, "final_loss": 0.125, "steps": 20},
        "steered": {"acc": 0.3, "final_loss": 2.5, "steps": 20},
    },
    "gibberish": {"steered": {"perplexity": 812.5}, "baseline": {"perplexity": 14.25}},
    "seconds": 33.5,
}
SUFFIXES = {
    "steered": {"suffix": "describe.\\ + similarlyNow", "continuations": ["zzz qq | *x*", "ok"]},
    "baseline": {"suffix": "!!! ok", "continuations": ["The answer is A"]},
}

PARAMS = """\
seed: 0
model:
  name: {model}
  dtype: float32
sae:
  layer: 9
  source: train
select:
  top_k: 3
  retain_threshold: 0.01
evaluate:
  primary_metric: acc
report:
  dir: reports
  contexts_per_latent: 3
"""

DVC_YAML = """\
stages:
  prepare-data:
    cmd: sae-unlearn prepare-data
    outs: [data/prepared]
  cache:
    cmd: sae-unlearn cache
    outs: [data/cache]
    metrics:
      - metrics/cache.json:
          cache: false
  train-sae:
    cmd: sae-unlearn train-sae
    outs: [data/sae]
    metrics:
      - metrics/sae.json:
          cache: false
  evaluate:
    cmd: sae-unlearn evaluate
    metrics:
      - metrics/steered.json:
          cache: false
  attack:
    cmd: sae-unlearn attack
    outs: [data/results/attack]
    metrics:
      - metrics/attack.json:
          cache: false
"""


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project directory holding every input the report reads, at the default paths."""
    from sae_unlearn.selection import SelectConfig, select_latents

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS.format(model="embedded"))
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    base, steered = _evaluation_metrics()
    _write_json(tmp_path / "metrics/baseline.json", base)
    _write_json(tmp_path / "metrics/steered.json", steered)
    cache = {
        "forget": {
            "corpus": "forget",
            "n_tokens": 70016,
            "n_sequences": 547,
            "seconds": 151.25,
            "tokens_per_second": 462.9,
            "bytes": 123,
        },
        "retain": {
            "corpus": "retain",
            "n_tokens": 69888,
            "n_sequences": 546,
            "seconds": 149.5,
            "tokens_per_second": 467.5,
            "bytes": 456,
        },
        "layers": [9],
        "total_tokens": 139904,
    }
    _write_json(tmp_path / "metrics/cache.json", cache)
    sae = {
        "explained_variance": 0.87125,
        "l0": 31.75,
        "dead_fraction": 0.0625,
        "n_tokens": 13990,
        "eval_split": "held_out",
        "architecture": "topk",
        "d_in": 640,
        "d_sae": 4096,
        "layer": 9,
        "source": "train",
        "train_seconds": 88.5,
    }
    _write_json(tmp_path / "metrics/sae.json", sae)
    _write_json(tmp_path / "metrics/attack.json", ATTACK)
    attack_dir = tmp_path / "data/results/attack"
    loss = [
        (s, m, (3.0 if m == "baseline" else 5.0) / (1 + s))
        for s in range(20)
        for m in ("baseline", "steered")
    ]
    attack_dir.mkdir(parents=True)
    pd.DataFrame(loss, columns=["step", "model", "loss"]).to_csv(
        attack_dir / "gcg_loss.csv", index=False
    )
    _write_json(attack_dir / "suffixes.json", SUFFIXES)
    latents = _latents()
    (tmp_path / "data/scores").mkdir(parents=True)
    latents.to_parquet(tmp_path / "data/scores/latents.parquet")
    _contexts().to_parquet(tmp_path / "data/scores/contexts.parquet")
    selected = select_latents(latents, SelectConfig(top_k=3, retain_threshold=0.01))
    (tmp_path / "data/selection").mkdir(parents=True)
    selected.to_parquet(tmp_path / "data/selection/selected.parquet")
    _write_json(
        tmp_path / "data/clamp/summary.json",
        {"mode": "clamp_prime", "layer": 9, "latents": [0, 1, 2], "value": -300.0},
    )
    return tmp_path


def _run(command, args: list[str]):
    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


# --- markdown parsing ---------------------------------------------------------------------


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every GFM table: headers and rows of cell text."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):

            def cells(line: str) -> list[str]:
                # Split at unescaped pipes, then drop markdown's backslash escapes.
                parts = re.split(r"(?<!\\)\|", line)[1:-1]
                return [re.sub(r"\\(.)", r"\1", c.strip()) for c in parts]

            headers, rows = cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((headers, rows))
        else:
            i += 1
    return tables


def table_with(text: str, header: str, row_key: str | None = None) -> list[dict[str, str]]:
    """The first table with column `header` (and, if given, a row whose first cell is
    `row_key`), as dicts."""
    for headers, rows in md_tables(text):
        if header in headers and (row_key is None or any(r[0] == row_key for r in rows)):
            assert all(len(r) == len(headers) for r in rows), (headers, rows)
            return [dict(zip(headers, r, strict=True)) for r in rows]
    raise AssertionError(f"no table with column {header!r}")


def value_ci(cell: str) -> tuple[float, float, float]:
    m = re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell)
    assert m, cell
    return float(m[1]), float(m[2]), float(m[3])


# --- the report ---------------------------------------------------------------------------


def test_report_numbers_equal_the_metrics_files(project: Path):
    _run(report.command, [])
    md = (project / "reports/report.md").read_text()
    base = json.loads((project / "metrics/baseline.json").read_text())
    steered = json.loads((project / "metrics/steered.json").read_text())

    # Accuracy: every set and subject, both metrics, values and 95% intervals.
    rows = table_with(md, "baseline acc [95% CI]")
    assert len(rows) == 2 + len(SUBJECTS["forget"]) + len(SUBJECTS["retain"])
    for row in rows:
        for model, metrics in (("baseline", base), ("steered", steered)):
            group = metrics[row["set"]]
            if row["subject"] != "all":
                group = group["by_subject"][row["subject"]]
            assert int(row["n"]) == group["n"] == (20 if row["subject"] != "all" else group["n"])
            for name in ("acc", "acc_norm"):
                value, lo, hi = value_ci(row[f"{model} {name} [95% CI]"])
                assert value == pytest.approx(group[name], abs=5e-5)
                assert [lo, hi] == pytest.approx(group[f"{name}_ci"], abs=5e-5)
    forget_all = next(r for r in rows if r["set"] == "forget" and r["subject"] == "all")
    assert value_ci(forget_all["steered acc [95% CI]"])[0] == pytest.approx(13 / 40, abs=5e-5)

    # Alignment and the SAE metrics, read back.
    align = {r["metric"]: r["value"] for r in table_with(md, "metric", "alignment")}
    assert float(align["alignment"]) == pytest.approx(steered["alignment"], abs=5e-5)
    assert float(align["r_forget"]) == pytest.approx(steered["r_forget"], abs=5e-5)
    assert align["retain_kept_99"] == ("yes" if steered["retain_kept_99"] else "no")
    sae_rows = {r["metric"]: r["value"] for r in table_with(md, "metric", "l0")}
    assert float(sae_rows["explained_variance"]) == pytest.approx(0.87125, abs=5e-5)
    assert sae_rows["l0"] == "31.7500" and sae_rows["dead_fraction"] == "0.0625"
    assert sae_rows["d_sae"] == "4096"

    # Selected latents: the selection's order and frequencies.
    selected = pd.read_parquet(project / "data/selection/selected.parquet")
    lat_rows = table_with(md, "forget freq")
    assert [int(r["latent"]) for r in lat_rows] == selected["latent"].tolist() == [0, 1, 2]
    assert [float(r["forget freq"]) for r in lat_rows] == pytest.approx([0.04, 0.03, 0.02])
    assert lat_rows[0]["score (forget_freq)"] == "0.0400"

    # Contexts: top 3 per corpus, firing token marked, table cells intact.
    assert "| the virus \\| spreads \\*fast\\* in \\[**cells**\\]⏎and \\`tissues\\` \\[x\\] |" in md
    assert "| line one\\[**⏎**\\]line two |" in md  # a newline token stays visible
    assert "B \\[**cells**\\] make antibodies" in md
    assert "beyond" not in md  # the 4th forget context of latent 0 is past contexts_per_latent

    # Attacks: few-shot curve, GCG accuracy with the suffix, gibberish, suffixes.
    few = table_with(md, "steered forget acc")
    assert [int(r["k"]) for r in few] == [0, 1, 4, 16]
    assert [float(r["steered forget acc"]) for r in few] == [0.325, 0.35, 0.4, 0.45]
    gcg = {r["model"]: r for r in table_with(md, "forget acc with suffix")}
    assert float(gcg["steered"]["forget acc with suffix"]) == 0.3
    assert float(gcg["baseline"]["final loss"]) == 0.125
    gib = {r["metric"]: r["value"] for r in table_with(md, "metric", "steered.perplexity")}
    assert gib == {"steered.perplexity": "812.5000", "baseline.perplexity": "14.2500"}
    assert "| steered.continuations\\[0\\] | `zzz qq \\| *x*` |" in md  # a code span
    assert "### Seconds" not in md  # run times belong to the timing section

    # Run times: what the stages recorded; the others are named.
    times = {r["stage"]: r for r in table_with(md, "recorded as")}
    assert times["cache"]["seconds"] == f"{151.25 + 149.5:.1f}"
    assert float(times["train-sae"]["seconds"]) == 88.5
    assert float(times["attack"]["seconds"]) == 33.5
    assert "No run time recorded by: prepare-data, evaluate" in md

    # Plots and their data, which DVC's plots read.
    plots = project / "reports/plots"
    for name in ("accuracy.png", "latents.png", "fewshot.png", "gcg_loss.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](plots/{name})" in md
    acc = pd.read_csv(plots / "accuracy_steered.csv")
    forget_row = acc[acc["label"] == "forget: all"].iloc[0]
    assert forget_row["accuracy"] == pytest.approx(0.325) and forget_row["metric"] == "acc"
    assert [forget_row["ci_low"], forget_row["ci_high"]] == pytest.approx(
        steered["forget"]["acc_ci"], abs=1e-6
    )
    assert pd.read_csv(plots / "fewshot.csv")["baseline"].tolist() == [0.8, 0.825, 0.85, 0.875]
    gcg_loss = pd.read_csv(plots / "gcg_loss.csv")
    assert list(gcg_loss.columns) == ["step", "baseline", "steered"]
    assert gcg_loss["steered"].iloc[4] == pytest.approx(1.0)
    freqs = pd.read_csv(plots / "latent_freqs.csv")
    assert freqs.loc[freqs["selected"], "latent"].tolist() == [0, 1, 2]
    assert pd.read_csv(plots / "selected_latents.csv")["latent"].tolist() == [0, 1, 2]
    assert "Paper reference" not in md  # not gemma-2-2b


def test_report_shows_calibrated_thresholds(project: Path):
    path = project / "data/selection/selected.parquet"
    selected = pd.read_parquet(path).assign(
        threshold=[12.5, 3.0, 0.0], forget_window_freq=[0.2, 0.1, 0.05], retain_window_freq=0.002
    )
    selected.to_parquet(path)
    _run(report.command, [])
    rows = table_with((project / "reports/report.md").read_text(), "threshold")
    assert [float(r["threshold"]) for r in rows] == [12.5, 3.0, 0.0]
    assert [float(r["forget window freq"]) for r in rows] == pytest.approx([0.2, 0.1, 0.05])


def test_report_leaves_out_missing_sections(project: Path):
    shutil.rmtree(project / "data/results/attack")
    (project / "metrics/attack.json").unlink()
    (project / "data/scores/contexts.parquet").unlink()
    (project / "params.yaml").write_text(PARAMS.format(model="google/gemma-2-2b"))
    _run(report.command, [])
    md = (project / "reports/report.md").read_text()
    assert "Not available yet (`metrics/attack.json` missing)" in md
    assert "Not available yet (`data/scores/contexts.parquet` missing)" in md
    assert not (project / "reports/plots/fewshot.png").exists()
    assert (project / "reports/plots/accuracy.png").exists()
    assert "Paper reference (gemma-2-2b, refusal-clamp): WMDP-bio 0.5860 -> 0.2718" in md


def test_report_needs_evaluation_metrics(project: Path):
    (project / "metrics/baseline.json").unlink()
    (project / "metrics/steered.json").unlink()
    app = typer.Typer()
    app.command()(report.command)
    result = CliRunner().invoke(app, [])
    assert result.exit_code != 0
    assert "evaluate-baseline" in result.output


def test_context_marks_token_without_its_whitespace():
    spans = context_spans("the virus", " cells", " grow")
    assert spans == [("", "the virus "), ("mark", "cells"), ("", " grow")]
    assert md_rich(spans, in_table=True) == "the virus \\[**cells**\\] grow"
    assert md_rich([("code", "a|b`c")], in_table=True) == "``a\\|b`c``"


def test_find_seconds_reads_nested_timings():
    data = {"forget": {"seconds": 2.5, "tokens_per_second": 9.0}, "train_seconds": 1, "x": True}
    assert find_seconds(data) == {"forget.seconds": 2.5, "train_seconds": 1.0}


def test_chance_matches_evaluation():
    from sae_unlearn.evaluation import CHANCE

    assert reporting.CHANCE == CHANCE
    # The derived paper point reproduces the paper's alignment.
    from sae_unlearn.evaluation import alignment_score

    score = alignment_score(
        reporting.PAPER_FORGET_STEERED,
        reporting.PAPER_FORGET_BASELINE,
        reporting.PAPER_RETAIN_STEERED,
        reporting.PAPER_RETAIN_BASELINE,
    )
    assert score == pytest.approx(reporting.PAPER_ALIGNMENT, abs=1e-9)


# --- the HTML in a real browser -----------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium; installed with apt-get (Debian package `chromium`) when missing."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "Chromium is missing and cannot be installed here (needs root and apt-get); "
            "install the Debian package `chromium` to run this test"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    log = ""
    # Try the existing package lists first; refresh them only if that fails.
    for cmd in (install, ["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            log = f"`{' '.join(cmd)}` timed out"
            break
        log = done.stderr[-500:]
        if cmd is install and done.returncode == 0:
            break
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(f"Chromium is missing and `apt-get install chromium` failed: {log}")
    return path


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# Writes each image's decoded width into the DOM once the page has loaded, so --dump-dom
# shows whether the browser really decoded the embedded PNGs.
PROBE = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.setAttribute("data-natural-width", String(img.naturalWidth));
  }
  document.body.setAttribute("data-probe", "done");
});
</script>
"""


def _chromium_cmd(binary: str, profile: Path) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def test_html_is_self_contained_and_renders_in_chromium(project: Path, chromium: str, tmp_path):
    _run(report.command, [])
    html_text = (project / "reports/report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html_text)
    assert len(sources) == 4
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "plots/" not in html_text.split("<body>")[1].replace("latent frequencies", "")
    assert "<mark>cells</mark>" in html_text

    # Render a copy elsewhere: the report must not need files next to it.
    page = tmp_path / "elsewhere" / "report.html"
    page.parent.mkdir()
    page.write_text(html_text.replace("</body>", PROBE + "</body>"))
    done = subprocess.run(
        _chromium_cmd(chromium, tmp_path / "profile") + ["--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    assert 'data-probe="done"' in dom, done.stderr[-2000:]
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom)]
    expected = [
        _png_size((project / "reports/plots" / name).read_bytes())[0]
        for name in ("latents.png", "accuracy.png", "fewshot.png", "gcg_loss.png")
    ]
    assert widths == expected and min(widths) > 100
    assert "Accuracy: baseline vs steered" in dom

    # And it draws something: a screenshot that is not a blank page.
    shot = tmp_path / "shot.png"
    subprocess.run(
        _chromium_cmd(chromium, tmp_path / "profile2")
        + [f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50


# --- compare ------------------------------------------------------------------------------

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
    result = _run(compare.command, ["--exp-json", str(recorded)])
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
    base, steered = _evaluation_metrics()
    other = json.loads(json.dumps(steered))
    other["forget"]["acc"], other["retain"]["acc"] = 0.5, 0.9
    _write_json(project / "runs/b/steered.json", other)
    result = _run(
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
