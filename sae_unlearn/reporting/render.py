"""Jinja2 rendering: the templates ship inside the package (PackageLoader), Markdown with
explicit escaping filters, HTML autoescaped with figures inlined as data URIs."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import jinja2

from sae_unlearn.reporting import format as fm

PACKAGE = "sae_unlearn.reporting"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fmt=fm.fmt,
        md_escape=fm.md_escape,
        md_line=fm.md_line,
        md=fm.md_rich,
        md_cell=fm.md_cell,
        md_paragraph=fm.md_paragraph,
        md_fence=fm.md_fence,
        rstrip=str.rstrip,
        md_align=lambda numeric: "---:" if numeric else "---",
        rich=fm.html_rich,
        plain=fm.plain,
        data_uri=png_data_uri,
    )
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def render_markdown(report: Any) -> str:
    return render("report.md.j2", report=report).rstrip() + "\n"


def render_html(report: Any) -> str:
    return render("report.html.j2", report=report)
