"""Number formats and the escaping of arbitrary text for Markdown and HTML."""

from __future__ import annotations

import numpy as np

from sae_unlearn.reporting.format import (
    flatten,
    fmt,
    fmt_ci,
    fmt_freq,
    html_rich,
    md_cell,
    md_escape,
    md_fence,
    md_paragraph,
    md_rich,
    plain,
    visible,
)


def test_fmt_prints_each_kind_of_value():
    assert fmt(None) == "–"
    assert fmt(True) == "yes" and fmt(np.bool_(False)) == "no"
    assert fmt(np.int64(4096)) == "4096"
    assert fmt(0.87125) == "0.8712" and fmt(np.float32(0.5), 2) == "0.50"
    assert fmt(float("nan")) == "nan"
    assert fmt([1, 0.25]) == "1, 0.2500"
    assert fmt("held_out") == "held_out"


def test_frequencies_and_intervals():
    assert fmt_freq(0.0001234567) == "0.0001235" and fmt_freq(0) == "0"
    assert fmt_ci(0.325, [0.2, 0.4756]) == "0.3250 [0.2000, 0.4756]"
    assert fmt_ci(0.325, None) == "0.3250" and fmt_ci(0.325, [0.2]) == "0.3250"


def test_flatten_keeps_lists_and_empty_dicts_as_leaves():
    data = {"a": {"b": {"c": 1}, "d": [1, 2], "e": {}}, "f": "x"}
    assert flatten(data) == {"a.b.c": 1, "a.d": [1, 2], "a.e": {}, "f": "x"}
    assert flatten(3) == {} and flatten(3, "k") == {"k": 3}


def test_markdown_escapes_every_special_character():
    assert md_escape("a|b*c_d`e[f]g<h~i\\j") == "a\\|b\\*c\\_d\\`e\\[f\\]g\\<h\\~i\\\\j"
    # Block starters only matter at the start of a paragraph.
    assert md_paragraph("# not a heading") == "\\# not a heading"
    assert md_paragraph("- not a list - item") == "\\- not a list - item"
    assert md_paragraph("> no quote") == "\\> no quote"


def test_table_cells_keep_to_one_line():
    assert md_cell("one\ntwo\r\nthree\tfour") == "one⏎two⏎three⇥four"
    assert visible("a\r\nb") == "a⏎b"
    # Outside tables, plain text keeps its newlines.
    assert md_rich("one\ntwo") == "one\ntwo"


def test_rich_spans_in_markdown():
    spans = [("b", "Latent 3"), ("", " (*x*) "), ("i", "note"), ("mark", "t|k"), ("", "")]
    assert md_rich(spans) == "**Latent 3** (\\*x\\*) _note_\\[**t\\|k**\\]"
    assert md_rich([("code", "a|b`c")], in_table=True) == "``a\\|b`c``"
    assert md_rich([("code", "a|b")]) == "`a|b`"  # pipes only matter in tables
    assert md_rich([("code", "`x`")]) == "`` `x` ``"


def test_code_block_fence_is_longer_than_any_inside():
    assert md_fence("plain") == "```"
    assert md_fence("a ``` b ````` c") == "``````"


def test_html_escapes_text_and_styles_spans():
    assert html_rich("<script>&'\"") == "&lt;script&gt;&amp;&#x27;&quot;"
    spans = [("", "<b>"), ("mark", "x<y"), ("code", "|`"), ("b", "B"), ("i", "I")]
    assert html_rich(spans) == (
        "&lt;b&gt;<mark>x&lt;y</mark><code>|`</code><strong>B</strong><em>I</em>"
    )
    assert plain(spans) == "<b>x<y|`BI" and plain("s") == "s"
