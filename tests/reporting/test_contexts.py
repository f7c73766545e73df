"""Top contexts of the selected latents: the firing token marked, order, cards."""

from __future__ import annotations

import pandas as pd

from sae_unlearn.reporting.contexts import context_spans, latent_cards, top_contexts
from sae_unlearn.reporting.format import md_cell
from tests.reporting.helpers import contexts_frame


def test_context_marks_token_without_its_whitespace():
    spans = context_spans("the virus", " cells", " grow")
    assert spans == [("", "the virus "), ("mark", "cells"), ("", " grow")]
    assert md_cell(spans) == "the virus \\[**cells**\\] grow"


def test_whitespace_tokens_are_shown_as_symbols():
    assert context_spans("a", "\n", "b") == [("", "a"), ("mark", "⏎"), ("", "b")]
    assert context_spans("a", "  ", "b") == [("", "a"), ("mark", "␣␣"), ("", "b")]
    assert context_spans("a", "", "b") == [("", "a"), ("mark", "∅"), ("", "b")]
    assert context_spans("x\ny", " t\t", "z") == [("", "x⏎y "), ("mark", "t"), ("", "⇥z")]


def test_top_contexts_forget_first_then_by_activation():
    ctx = contexts_frame()
    top = top_contexts(ctx, 0, 2)
    assert list(zip(top["corpus"], top["activation"], strict=True)) == [
        ("forget", 12.5),
        ("forget", 9.25),
        ("retain", 2.0),
    ]
    # Without a corpus column: the n highest.
    bare = ctx.drop(columns="corpus")
    assert top_contexts(bare, 0, 2)["activation"].tolist() == [12.5, 9.25]


def test_latent_cards_in_rank_order_with_stats():
    selected = pd.DataFrame(
        {"latent": [2, 0, 7], "rank": [2, 1, 3], "forget_freq": [0.02, 0.04, 1e-5]}
    )
    cards = latent_cards(selected, contexts_frame(), 3)
    assert [c.latent for c in cards] == [0, 2, 7]
    assert cards[0].summary == "(rank 1, forget freq 0.04)"
    assert cards[2].summary == "(rank 3, forget freq 1e-05)"
    table = cards[0].contexts
    assert table.headers == ["corpus", "activation", "context"]
    assert [r[:2] for r in table.rows] == [
        ["forget", "12.50"],
        ["forget", "9.25"],
        ["forget", "3.00"],
        ["retain", "2.00"],
    ]
    assert table.rows[1][2] == [("", "B "), ("mark", "cells"), ("", " make antibodies")]
    assert cards[2].contexts is None  # latent 7 has no recorded contexts
