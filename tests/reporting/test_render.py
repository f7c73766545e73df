"""Rendering: templates come from the package, and arbitrary text stays text."""

from __future__ import annotations

import importlib.resources
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import jinja2
import pandas as pd

from sae_unlearn.reporting.inputs import ReportInputs, ReportOptions
from sae_unlearn.reporting.render import environment
from sae_unlearn.reporting.report import build_report, write_report
from tests.reporting.helpers import md_tables

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("report.md.j2", "report.html.j2", "compare.md.j2")


def test_templates_are_package_resources():
    loader = environment().loader
    assert isinstance(loader, jinja2.PackageLoader)
    assert loader.package_name == "sae_unlearn.reporting"
    assert set(TEMPLATES) <= set(environment().list_templates())
    files = importlib.resources.files("sae_unlearn.reporting") / "templates"
    for name in TEMPLATES:
        assert (files / name).is_file()


def test_templates_load_from_a_zipped_package(tmp_path: Path):
    """A zip import has no source directory: only a package loader finds the templates."""
    archive = tmp_path / "lib.zip"
    library = ROOT / "sae_unlearn"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in [
            library / "__init__.py",
            library / "io.py",
            library / "errors.py",
            library / "reporting",
        ]:
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            for file in files:
                if file.is_file() and "__pycache__" not in file.parts:
                    zf.write(file, file.relative_to(ROOT).as_posix())
    code = (
        f"import sys; sys.path.insert(0, {str(archive)!r})\n"
        "import pandas as pd, sae_unlearn.reporting as r\n"
        "from sae_unlearn.reporting.compare import comparison_markdown\n"
        "assert r.__file__.startswith(sys.path[0]), r.__file__\n"
        "print(comparison_markdown(pd.DataFrame(), None, reference=False), end='')\n"
    )
    env = {**os.environ, "PYTHONPATH": "", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "# Experiments\n\n_No experiment with steered metrics was found._\n"


HOSTILE = "a|b *c* _d_ `e` ``f`` [g](h) <script>alert(1)</script> </details> # ~x~ \\ \n new"


def _hostile_inputs() -> ReportInputs:
    steered = {
        "forget": {"acc": 0.3, "n": 4, "by_subject": {HOSTILE: {"acc": 0.25, "n": 4}}},
        "format": HOSTILE,
    }
    contexts = pd.DataFrame(
        {"latent": [5], "corpus": ["forget"], "activation": [2.0], "left": [HOSTILE]}
        | {"token": [" <b>tok|en</b>"], "right": [HOSTILE]}
    )
    return ReportInputs(
        params={"model": {"name": HOSTILE}},
        steered=steered,
        attack_families={
            "gcg": {"steered": {"suffix": {"acc": 0.5, "acc_ci": [0.25, 0.75]}}, "n": 4},
            "generation": {"note": HOSTILE},
        },
        gcg_suffixes={"suffixes": {"steered": {"suffix": HOSTILE}}},
        samples={"steered": [{"question": HOSTILE, "plain": {"continuation": HOSTILE}}]},
        selected=pd.DataFrame({"latent": [5], "rank": [1], "score_name": [HOSTILE]}),
        contexts=contexts,
        sources={"baseline": f"{HOSTILE}.json"},
        steered_results={
            "retain": pd.DataFrame({"gate_opened": [True, False], "gate_token": [HOSTILE, None]})
        },
    )


def test_arbitrary_text_stays_text_in_html(tmp_path: Path):
    out = write_report(_hostile_inputs(), tmp_path, ReportOptions(title=HOSTILE))
    page = out["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The only <details> are the report's own (params, one latent card) and they all close.
    assert page.count("<details") == 2 and page.count("</details>") == 2
    assert "<mark>&lt;b&gt;tok|en&lt;/b&gt;</mark>" in page
    assert "<title>a|b *c* _d_ `e` ``f`` [g](h) &lt;script&gt;" in page


def _outside_code(md: str) -> str:
    """The Markdown with fenced blocks and code spans removed (their text is literal)."""
    md = re.sub(r"^(`{3,}).*?^\1$", "", md, flags=re.DOTALL | re.MULTILINE)
    # A span opens at an unescaped backtick run and closes at a run of the same length.
    return re.sub(r"(?<![\\`])(`+)(?!`).+?(?<!`)\1(?!`)", "", md, flags=re.DOTALL)


def test_arbitrary_text_stays_text_in_markdown(tmp_path: Path):
    out = write_report(_hostile_inputs(), tmp_path, ReportOptions(title=HOSTILE))
    md = out["markdown"].read_text()
    outside = _outside_code(md)
    assert not re.search(r"(?<!\\)<script>", outside) and "\\<script>" in outside
    # The only <details> are the report's own (params, one latent card) and they all close.
    assert len(re.findall(r"(?<!\\)<details>", outside)) == 2
    assert len(re.findall(r"(?<!\\)</details>", outside)) == 2
    # Headings are the report's own, each on one line.
    one_line = HOSTILE.replace("\n", "⏎")
    headings = re.findall(r"^#+ .*$", outside, flags=re.MULTILINE)
    assert headings[0] == (
        r"# a\|b \*c\* \_d\_ \`e\` \`\`f\`\` \[g\](h) \<script>alert(1)\</script> "
        r"\</details> # \~x\~ \\ ⏎ new"
    )
    assert [h.split(" ", 1)[1] for h in headings[1:3]] == ["Results", "Setup"]
    assert len(headings) == 1 + 8 + 1 + 5  # title, sections, contexts, attack parts
    assert [h.split(" ", 1)[1] for h in headings[-5:]] == [
        "Summary: forget accuracy under every attack",
        "GCG suffix",
        "Generation",
        "Sample continuations",
        "Found suffixes",
    ]
    # Every table keeps its shape and its cells read back as the text they hold.
    tables = md_tables(md)
    assert all(len(row) == len(headers) for headers, rows in tables for row in rows)
    cells = {cell for _, rows in tables for row in rows for cell in row}
    assert f"{one_line} [**<b>tok|en</b>**]{one_line}" in cells  # the latent's context
    # the subject name (accuracy table), the generation note, the sample's question
    assert one_line in cells
    sample = next(r for h, rows in tables if "continuation" in h for r in rows)
    assert sample[:2] == [one_line, "steered plain"]
    # The gate token: its repr (newlines and spaces visible) in a code span, pipes escaped
    token = "```" + repr(HOSTILE).replace("|", "\\|") + "```"
    assert f"| retain | 1 | {token} | 1 | 0.5000 |" in md
    setup = dict(next(rows for headers, rows in tables if headers == ["", "value"]))
    # A code span: the table reader drops the backslash before the space.
    assert setup["model"] == "```" + one_line.replace("\\ ", " ") + "```"


def test_build_report_keeps_sections_in_order(tmp_path: Path):
    report, data = build_report(_hostile_inputs(), tmp_path / "plots")
    assert list(vars(report)) == [
        "title",
        "headline",
        "setup",
        "sae",
        "latents",
        "accuracy",
        "alignment",
        "gates",
        "attacks",
    ]
    assert sorted(data) == ["accuracy_steered.csv", "attack_summary.csv"]
