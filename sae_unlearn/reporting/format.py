"""How the report prints values, and how text is escaped for Markdown and HTML.

Rich text is a plain string, or spans of (style, text) with style "" | "b" | "i" | "code" |
"mark" (the firing token of a context). The templates call these functions as filters.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from markupsafe import Markup

Span = tuple[str, str]
Rich = str | list[Span]


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers as the report prints them (the tests parse them back)."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "nan"
        return f"{float(value):.{digits}f}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def fmt_freq(value: float) -> str:
    """Frequencies span many decades: four significant digits, not four decimals."""
    return f"{float(value):.4g}"


def fmt_ci(value: float, ci: Sequence[float] | None) -> str:
    if ci is None or len(ci) != 2:
        return fmt(value)
    return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"a.b.c": leaf}; lists stay leaves."""
    if not isinstance(data, Mapping):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def visible(text: str) -> str:
    """Line breaks and tabs shown as symbols: contexts live on one table line."""
    return text.replace("\r\n", "\n").replace("\n", "⏎").replace("\t", "⇥")


# --- Markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<|~])")
# Characters that start a block (heading, quote, list) only at the beginning of a line.
_MD_BLOCK_START = re.compile(r"^([#>+-])")


def md_escape(text: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def md_line(text: Any) -> str:
    """Plain text that must stay on one line (a heading, a table header)."""
    return md_escape(visible(str(text)))


def md_line_start(text: str) -> str:
    """Escape a character that would turn a paragraph into a heading, quote or list."""
    return _MD_BLOCK_START.sub(r"\\\1", text)


def md_code(text: str, in_table: bool = False) -> str:
    """A code span whose fence is longer than any backtick run inside it."""
    text = visible(text) if in_table else text
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    code = f"{fence}{pad}{text}{pad}{fence}"
    # GFM splits table cells at pipes even inside code spans.
    return code.replace("|", "\\|") if in_table else code


def md_fence(text: str) -> str:
    """The fence of a code block holding `text`: longer than any backtick run of 3+ in it."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


def md_rich(content: Rich, in_table: bool = False) -> str:
    if isinstance(content, str):
        return md_escape(visible(content) if in_table else content)
    parts = []
    for style, text in content:
        if not text:
            continue
        if style == "code":
            parts.append(md_code(text, in_table))
        elif style == "mark":
            # Brackets outside the bold: `**` next to punctuation always opens and closes,
            # whatever characters the context has around the token.
            parts.append(f"\\[**{md_escape(text)}**\\]")
        elif style == "b":
            parts.append(f"**{md_escape(text)}**")
        elif style == "i":
            parts.append(f"_{md_escape(text)}_")
        else:
            parts.append(md_escape(text))
    return "".join(parts)


def md_cell(content: Rich) -> str:
    return md_rich(content, in_table=True)


def md_paragraph(content: Rich) -> str:
    return md_line_start(md_rich(content))


# --- HTML ---------------------------------------------------------------------------------

_HTML_TAGS = {"b": "strong", "i": "em", "code": "code", "mark": "mark"}


def html_rich(content: Rich) -> Markup:
    if isinstance(content, str):
        return Markup(html.escape(content))
    parts = []
    for style, text in content:
        tag = _HTML_TAGS.get(style)
        escaped = html.escape(text)
        parts.append(f"<{tag}>{escaped}</{tag}>" if tag else escaped)
    return Markup("".join(parts))


def plain(content: Rich) -> str:
    """Rich text without its styles (for a <summary> or an alt text)."""
    return content if isinstance(content, str) else "".join(text for _, text in content)
