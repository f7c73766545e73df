"""The whole report through the `report` command: numbers read back from report.md, the
results card, what folds away, and the HTML rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pipeline import report
from pipeline.cli import user_errors
from tests.reporting.helpers import PARAMS, SUBJECTS, run, table_with, value_ci

# The report's figures in the order it shows them: the results card's, the latents', then
# the attacks' (summary, few-shot, GCG loss, GCG budget curve).
PNGS = (
    "accuracy.png",
    "latents.png",
    "attack_summary.png",
    "fewshot.png",
    "gcg_loss.png",
    "gcg_budget.png",
)


def test_report_numbers_equal_the_metrics_files(project: Path):
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    base = json.loads((project / "metrics/baseline.json").read_text())
    steered = json.loads((project / "metrics/steered.json").read_text())

    # Accuracy: every set and subject, both metrics, values and 95% intervals.
    rows = table_with(md, "subject")
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

    # Attacks: the summary over the families, few-shot curve, GCG accuracy with the suffix,
    # the generation check, samples, suffixes.
    summary = {(r["attack"], r["setting"]): r for r in table_with(md, "gate open")}
    assert list(summary) == [("fewshot", f"k={k}") for k in (0, 1, 4, 16)] + [
        ("gcg", "none"),
        ("gcg", "suffix"),
    ]
    assert value_ci(summary[("gcg", "suffix")]["steered forget acc"]) == pytest.approx(
        (0.3, 0.2, 0.4)
    )
    assert summary[("gcg", "suffix")]["gate open"] == "0.500"
    few = table_with(md, "steered forget acc", "0")
    assert [int(r["k"]) for r in few] == [0, 1, 4, 16]
    assert [float(r["steered forget acc"]) for r in few] == [0.325, 0.35, 0.4, 0.45]
    gcg = {r["model"]: r for r in table_with(md, "forget acc with suffix")}
    assert float(gcg["steered"]["forget acc with suffix"]) == 0.3
    assert float(gcg["steered"]["forget acc"]) == 0.325
    assert float(gcg["baseline"]["final loss"]) == 0.125
    assert float(gcg["baseline"]["init loss"]) == 3.0
    assert "GCG budget: 20 steps, search width 16, top-k 64 over 2 questions" in md
    gen = {r["metric"]: r["value"] for r in table_with(md, "metric", "fluent_ppl")}
    assert gen["fluency.steered.plain.ppl_median"] == "812.5000"
    assert gen["fluency.baseline.suffix.leak_share"] == "0.6250"
    assert gen["n_prompts"] == "8" and "seconds" not in gen  # run times stay out
    samples = table_with(md, "continuation")
    assert [r["setting"] for r in samples] == [
        "baseline plain",
        "baseline suffix",
        "steered plain",
        "steered suffix",
    ]
    assert samples[2]["continuation"] == "`⏎A.⏎A.⏎A.`" and samples[2]["repetitive"] == "yes"
    assert samples[0]["names answer"] == "yes" and samples[3]["perplexity"] == "950.00"
    assert "| suffixes.steered.suffix | `zzz qq \\| *x*` |" in md  # a code span
    assert "### Seconds" not in md

    # Run times live in logs/timings.json, never in the report (a DVC output).
    assert "recorded as" not in md and "Run times" not in md

    # Plots and their data, which DVC's plots read.
    plots = project / "reports/plots"
    for name in PNGS:
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
    assert gcg_loss["step"].tolist() == list(range(21))  # step 0: the initial loss
    assert gcg_loss["steered"].iloc[4] == pytest.approx(1.0)
    budget = pd.read_csv(plots / "gcg_budget.csv")
    assert budget["step"].tolist() == [0, 10, 20]
    assert budget["steered"].tolist() == [0.325, 0.3125, 0.3]
    summary_csv = pd.read_csv(plots / "attack_summary.csv")
    assert len(summary_csv) == 2 * 6 and set(summary_csv["family"]) == {"fewshot", "gcg"}
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
    run(report.command, [])
    rows = table_with((project / "reports/report.md").read_text(), "threshold")
    assert [float(r["threshold"]) for r in rows] == [12.5, 3.0, 0.0]
    assert [float(r["forget window freq"]) for r in rows] == pytest.approx([0.2, 0.1, 0.05])


def test_report_leaves_out_missing_sections(project: Path):
    shutil.rmtree(project / "data/results/attacks")
    for family in ("fewshot", "gcg", "generation"):
        (project / f"metrics/attack_{family}.json").unlink()
    (project / "data/scores/contexts.parquet").unlink()
    (project / "params.yaml").write_text(PARAMS.format(model="google/gemma-2-2b"))
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    assert "Not available yet (`metrics/attack_gcg.json` missing)" in md
    assert "Not available yet (`metrics/attack_fewshot.json` missing)" in md
    assert "Not available yet (`data/scores/contexts.parquet` missing)" in md
    assert "### Few-shot" not in md and "### GCG suffix" not in md
    assert "### Sample continuations" not in md and "### Found suffixes" not in md
    assert not (project / "reports/plots/fewshot.png").exists()
    assert not (project / "reports/plots/gcg_loss.png").exists()
    assert (project / "reports/plots/accuracy.png").exists()
    assert "Paper reference (gemma-2-2b, refusal-clamp): WMDP-bio 0.5860 -> 0.2718" in md


def test_report_names_missing_gcg_outputs(project: Path):
    """The gcg family's metrics without its losses and suffixes: its part says which files
    are missing; the sample continuations come from the generation family alone."""
    (project / "data/results/attacks/gcg/losses.json").unlink()
    (project / "data/results/attacks/gcg/suffixes.json").unlink()
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    gcg = md.split("### GCG suffix", 1)[1].split("\n### ", 1)[0]
    assert "Not available yet (`data/results/attacks/gcg/losses.json` missing)" in gcg
    assert "GCG budget:" not in gcg and "](plots/gcg_budget.png)" in gcg
    found = md.split("### Found suffixes", 1)[1].split("\n## ", 1)[0]
    assert "Not available yet (`data/results/attacks/gcg/suffixes.json` missing)" in found
    assert "### Sample continuations" in md
    assert not (project / "reports/plots/gcg_loss.png").exists()


def test_report_reads_attack_outputs_from_attacks_dir(project: Path):
    elsewhere = project / "elsewhere"
    shutil.move(project / "data/results/attacks", elsewhere)
    result = run(report.command, ["--attacks-dir", str(elsewhere)])
    assert "gcg_losses" not in result.output  # none left out
    md = (project / "reports/report.md").read_text()
    assert "### Sample continuations" in md and "| suffixes.baseline.suffix | `!!! ok` |" in md
    gcg_loss = pd.read_csv(project / "reports/plots/gcg_loss.csv")
    assert gcg_loss["baseline"].iloc[2] == pytest.approx(1.0)


def test_report_needs_evaluation_metrics(project: Path):
    (project / "metrics/baseline.json").unlink()
    (project / "metrics/steered.json").unlink()
    app = typer.Typer()
    app.command()(user_errors(report.command))
    result = CliRunner().invoke(app, [])
    assert result.exit_code != 0
    assert "evaluate-baseline" in result.output


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
    run(report.command, [])
    html_text = (project / "reports/report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html_text)
    assert len(sources) == len(PNGS)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "plots/" not in html_text.split("<body>")[1].replace("latent frequencies", "")
    assert "<mark>cells</mark>" in html_text
    # Contexts arrive escaped: a pipe, stars and backticks are text, not markup.
    assert "the virus | spreads *fast* in <mark>cells</mark>⏎and `tissues` [x]" in html_text

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
        # The accuracy figure heads the report, in the results card.
        for name in PNGS
    ]
    assert widths == expected and min(widths) > 100
    assert "Accuracy: baseline vs steered" in dom
    # Folded away, yet present: the browser parsed them as <details> elements.
    assert dom.count("<details") == 1 + 3 and "<summary>Parameters (params.yaml)</summary>" in dom

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


# --- the results card and what folds away ------------------------------------------------


def _sections(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.MULTILINE)


def test_results_card_comes_first_with_the_metrics_numbers(project: Path):
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    base = json.loads((project / "metrics/baseline.json").read_text())
    steered = json.loads((project / "metrics/steered.json").read_text())

    # Right under the title, before the setup, with the accuracy figure as its one figure.
    assert md.startswith("# sae-unlearn report\n\n## Results\n")
    assert _sections(md)[:2] == ["Results", "Setup"]
    card = md.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card) == ["plots/accuracy.png"]

    rows = {r["set"]: r for r in table_with(card, "set")}
    assert list(rows) == ["forget", "retain"]
    for role in ("forget", "retain"):
        for model, metrics in (("baseline", base), ("steered", steered)):
            value, lo, hi = value_ci(rows[role][f"{model} acc [95% CI]"])
            assert value == pytest.approx(metrics[role]["acc"], abs=5e-5)
            assert [lo, hi] == pytest.approx(metrics[role]["acc_ci"], abs=5e-5)
    # By hand from the fixture: forget 32/40 -> 13/40, retain 48/60 -> 46/60.
    assert value_ci(rows["forget"]["baseline acc [95% CI]"])[0] == 0.8
    assert value_ci(rows["forget"]["steered acc [95% CI]"])[0] == 0.325
    assert value_ci(rows["retain"]["steered acc [95% CI]"])[0] == pytest.approx(46 / 60, abs=5e-5)

    facts = dict(re.findall(r"^- \*\*(.+?):\*\* (.+)$", card, flags=re.MULTILINE))
    assert float(facts["alignment"]) == pytest.approx(steered["alignment"], abs=5e-5)
    assert facts["retain ratio"].startswith(f"{46 / 60 / 0.8:.4f} ")
    # Few-shot worst case: the steered model's highest forget accuracy (0.45 at k=16 in
    # FEWSHOT); GCG: its forget accuracy with the suffix (0.3) and without (0.325); the
    # strongest setting of all families.
    assert facts["attacks (steered forget acc)"] == (
        "few-shot worst case 0.4500 at k=16 (baseline 0.8750); "
        "GCG suffix 0.3000 (0.3250 without it); strongest: fewshot: k=16 0.450 (baseline 0.875)"
    )

    html_text = (project / "reports/report.html").read_text()
    body = html_text.split("<body>", 1)[1]
    first_section = body.index('<section class="card" id="results">')
    assert first_section < body.index("<h2>Setup</h2>") and "<h2>" not in body[:first_section]
    card_html = body[first_section : body.index("<h2>Setup</h2>")]
    assert card_html.count("<img ") == 1 and 'alt="accuracy per subject"' in card_html
    assert '<td class="num">0.3250 [0.2000, 0.4756]</td>' in card_html
    assert "<dt>alignment</dt><dd>0.8113</dd>" in card_html


def test_results_card_without_baseline_or_attacks(project: Path):
    (project / "metrics/baseline.json").unlink()
    for family in ("fewshot", "gcg", "generation"):
        (project / f"metrics/attack_{family}.json").unlink()
    steered = json.loads((project / "metrics/steered.json").read_text())
    for key in ("alignment", "retain_ratio"):
        del steered[key]
    (project / "metrics/steered.json").write_text(json.dumps(steered))
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    card = md.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = table_with(card, "set")
    assert list(rows[0]) == [
        "set", "n", "steered acc [95% CI]", "steered test half", "known",
        "steered known-correct acc",
    ]  # fmt: skip
    assert value_ci(rows[0]["steered acc [95% CI]"])[0] == 0.325
    assert "- **attacks (steered forget acc):** not run yet" in card
    assert "alignment" not in card and "retain ratio" not in card


def _details(text: str) -> list[str]:
    return re.findall(r"<details[^>]*>(.*?)</details>", text, flags=re.DOTALL)


def test_params_and_latent_contexts_fold_away_in_details(project: Path):
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    html_text = (project / "reports/report.html").read_text()
    for text in (md, html_text):
        blocks = _details(text)
        assert len(blocks) == 1 + 3  # params.yaml, then one card per selected latent
        assert "Parameters (params.yaml)" in blocks[0] and "top_k: 3" in blocks[0]
        assert "top_k: 3" not in text.replace(blocks[0], "")
        for block, latent in zip(blocks[1:], (0, 1, 2), strict=True):
            assert f"Latent {latent}</" in block
        assert "Paris is the" in blocks[1] and "Mosquitoes" in blocks[3]
        # No context outside its card.
        outside = text
        for block in blocks:
            outside = outside.replace(block, "")
        assert "Paris is the" not in outside and "antibodies" not in outside

    # GitHub renders Markdown inside <details> only with blank lines around it.
    assert "<summary>Parameters (params.yaml)</summary>\n\n```yaml\nseed: 0\n" in md
    card = _details(md)[1]
    assert card.startswith("\n<summary><b>Latent 0</b> (rank 1, forget freq 0.04, retain freq 0)")
    assert "</summary>\n\n| corpus | activation | context |\n|---|---:|---|\n" in card
    assert card.endswith("|\n\n")
    # The card's stats, in the HTML summary.
    assert (
        "<summary><strong>Latent 1</strong> (rank 2, forget freq 0.03, retain freq 0.001)"
        "</summary>" in html_text
    )


def test_report_rejects_unreadable_inputs(project: Path):
    app = typer.Typer()
    app.command()(user_errors(report.command))
    (project / "metrics/sae.json").write_text("{not json")
    result = CliRunner().invoke(app, [])
    assert result.exit_code != 0 and "metrics/sae.json is not valid JSON" in result.output
    (project / "metrics/sae.json").write_text("{}")
    (project / "data/results/attacks/gcg/losses.json").write_text('{"steered": [1.0,')
    result = CliRunner().invoke(app, [])
    assert result.exit_code != 0
    assert "data/results/attacks/gcg/losses.json is not valid JSON" in result.output


def test_report_renders_every_role(project: Path):
    from sae_unlearn.evaluation import accuracy_summary, split_summaries
    from tests.reporting.helpers import per_question

    roles = ["forget", "retain", "retain_near", "retain_contaminated", "retain_near_contaminated"]
    for model in ("baseline", "steered"):
        path = project / f"metrics/{model}.json"
        metrics = json.loads(path.read_text())
        for i, role in enumerate(roles[2:]):
            frame = per_question(model, "retain").iloc[: 20 * (i + 1)].copy()
            frame["split"] = ["dev", "test"] * (len(frame) // 2)
            metrics[role] = accuracy_summary(frame, 50, 0) | split_summaries(frame, 50, 0)
            metrics[role]["known_correct"] = {"acc": 0.5, "acc_ci": [0.25, 0.75], "n": 4}
        path.write_text(json.dumps(metrics))
    run(report.command, [])
    md = (project / "reports/report.md").read_text()
    card = md.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = {r["set"]: r for r in table_with(card, "set")}
    assert list(rows) == roles
    near = json.loads((project / "metrics/steered.json").read_text())["retain_contaminated"]
    row = rows["retain_contaminated"]
    assert row["n"] == "40"
    assert value_ci(row["steered acc [95% CI]"])[0] == pytest.approx(near["acc"], abs=5e-5)
    assert value_ci(row["steered test half"])[0] == pytest.approx(near["test"]["acc"], abs=5e-5)
    assert row["known"] == "4" and value_ci(row["steered known-correct acc"])[0] == 0.5
    # The accuracy table lists every role and subject too.
    sets = {r["set"] for r in table_with(md, "subject")}
    assert sets == set(roles)
    page = (project / "reports/report.html").read_text()
    card_html = page[page.index('id="results"') : page.index("<h2>Setup</h2>")]
    assert all(f"<td>{role}</td>" in card_html for role in roles)
