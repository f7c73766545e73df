"""Which latents get contexts, and decoding a context without losing its spaces."""

from __future__ import annotations

import numpy as np

from sae_unlearn.selection.config import ScoreConfig, SelectConfig
from sae_unlearn.selection.contexts import TokenIndex, context_latents, decode_context
from tests.selection.helpers import hand_stats, hand_windows


def test_decode_context_keeps_spaces(tiny_model):
    _, tokenizer = tiny_model
    ids = tokenizer("Paris is the capital of France", add_special_tokens=False)["input_ids"]
    left, token, right = decode_context(tokenizer, ids[:2], ids[2], ids[3:])
    assert left + token + right == "Paris is the capital of France"
    assert token.strip() and token == tokenizer.decode(ids[:3])[len(left) :]


def test_contexts_follow_the_calibrated_ranking():
    cfg = ScoreConfig(
        layer=0,
        rankings=("forget_window_freq", "forget_freq"),
        context_latents=1,
        select=SelectConfig(retain_threshold=None, threshold_rate=0.2),
    )
    picked = context_latents(hand_stats().head(3), cfg, hand_windows())
    # forget_window_freq's best is latent 1 (0.5 of forget windows); forget_freq's is 0.
    assert picked == {1: ["forget_window_freq"], 0: ["forget_freq"]}


def test_contexts_follow_selects_filters():
    # Latent 6 leads forget_freq but fires on 0.9% of retain: select's 0.005 filter drops it,
    # and so must the choice of latents with contexts.
    cfg = ScoreConfig(
        layer=0,
        rankings=("forget_freq",),
        context_latents=2,
        select=SelectConfig(retain_threshold=0.005),
    )
    assert context_latents(hand_stats(), cfg) == {1: ["forget_freq"], 2: ["forget_freq"]}
    assert context_latents(hand_stats(), ScoreConfig(layer=0, context_latents=0)) == {}


def test_token_index_window_stops_at_sequences_and_special_tokens():
    index = TokenIndex(
        sequence_id=np.array([0, 0, 0, 0, 1, 1, 1]),
        position=np.array([0, 1, 2, 3, 0, 1, 2]),
        token_id=np.array([1, 11, 12, 13, 1, 21, 22]),
        is_special=np.array([True, False, False, False, True, False, False]),
    )
    assert index.window(2, 5) == ([11], [13])  # BOS on the left, sequence end on the right
    assert index.window(3, 1) == ([12], [])
    assert index.window(5, 5) == ([], [22])
