"""Top activating contexts of the selected latents, as cards: stats and marked contexts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from sae_unlearn.reporting.document import Table
from sae_unlearn.reporting.format import Span, fmt, fmt_freq, visible

CONTEXT_COLUMNS = {"latent", "left", "token", "right"}


def context_spans(left: str, token: str, right: str) -> list[Span]:
    """A context with its firing token marked; the token's surrounding whitespace stays
    outside the mark so markdown emphasis still parses (`** x**` is not bold)."""
    stripped = token.strip()
    if not stripped:
        # A whitespace or newline token: show it as a symbol so the mark is visible.
        shown = visible(token).replace(" ", "␣") or "∅"
        return [("", visible(left)), ("mark", shown), ("", visible(right))]
    lead = token[: len(token) - len(token.lstrip())]
    trail = token[len(token.rstrip()) :]
    return [
        ("", visible(left + lead)),
        ("mark", visible(stripped)),
        ("", visible(trail + right)),
    ]


def top_contexts(contexts: pd.DataFrame, latent: int, per_corpus: int) -> pd.DataFrame:
    """The highest activations of `latent`, `per_corpus` per corpus, forget corpus first."""
    mine = contexts[contexts["latent"] == latent]
    if "activation" in mine:
        mine = mine.sort_values("activation", ascending=False)
    if "corpus" not in mine:
        return mine.head(per_corpus)
    # Forget contexts first: they show what the latent means.
    mine = mine.assign(
        _o=mine["corpus"].map({"forget": 0, "retain": 1, "retain_near": 2}).fillna(3)
    )
    mine = mine.sort_values(
        ["_o", "activation"] if "activation" in mine else ["_o"],
        ascending=[True, False] if "activation" in mine else [True],
        kind="mergesort",
    )
    return mine.groupby("corpus", sort=False).head(per_corpus)


@dataclass
class LatentCard:
    latent: int
    stats: list[str]  # "rank 1", "forget freq 0.04", ...
    contexts: Table | None  # None when no context was recorded

    @property
    def summary(self) -> str:
        return f"({', '.join(self.stats)})" if self.stats else ""


def _stats(r: Mapping) -> list[str]:
    stats = [f"rank {int(r['rank'])}"] if "rank" in r else []
    for corpus in ("forget", "retain", "retain_near"):
        value = r.get(f"{corpus}_freq")
        if value is not None and not pd.isna(value):
            stats.append(f"{corpus} freq {fmt_freq(value)}")
    return stats


def latent_cards(
    selected: pd.DataFrame, contexts: pd.DataFrame, per_corpus: int
) -> list[LatentCard]:
    """One card per selected latent, in rank order."""
    order = selected.sort_values("rank") if "rank" in selected else selected
    cards = []
    for r in order.to_dict("records"):
        latent = int(r["latent"])
        mine = top_contexts(contexts, latent, per_corpus)
        table = None
        if not mine.empty:
            rows = [
                [
                    str(c.get("corpus", "")),
                    fmt(c.get("activation"), 2) if "activation" in c else "",
                    context_spans(str(c["left"]), str(c["token"]), str(c["right"])),
                ]
                for c in mine.to_dict("records")
            ]
            table = Table(["corpus", "activation", "context"], rows, [False, True, False])
        cards.append(LatentCard(latent, _stats(r), table))
    return cards
