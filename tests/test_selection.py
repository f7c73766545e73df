"""Latent scoring and selection: streamed statistics against a dense computation, special
tokens, contexts, the selection rule for each score, the refusal latent, and the stages."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from typer.testing import CliRunner

from pipeline.cli import app
from sae_unlearn.activations import (
    CacheConfig,
    cache_corpus,
    read_activations,
    read_tokens,
    resid_column,
    special_token_ids,
)
from sae_unlearn.models import capture_residuals
from sae_unlearn.selection import (
    STAT_COLUMNS,
    ScoreConfig,
    SelectConfig,
    context_latents,
    corpus_statistics,
    decode_context,
    find_refusal_latent,
    latent_table,
    rank_latents,
    refusal_scores,
    score_latents,
    select_latents,
    window_statistics,
    window_table,
)
from tests.tiny import TRAINING_TEXT

LAYER, D, D_SAE = 1, 32, 24
FORGET_TEXTS = [TRAINING_TEXT[i] for i in (0, 1, 5)] * 8
RETAIN_TEXTS = [TRAINING_TEXT[i] for i in (2, 3, 4, 6, 7)] * 5


@pytest.fixture(scope="module")
def cache_dir(tiny_model, tmp_path_factory) -> Path:
    model, tokenizer = tiny_model
    out = tmp_path_factory.mktemp("selection_cache")
    # batch_size 3 gives several row groups, so the statistics are really streamed.
    cfg = CacheConfig(layers=(0, LAYER), seq_len=24, batch_size=3, max_tokens=24 * 10)
    for corpus, texts in (("forget", FORGET_TEXTS), ("retain", RETAIN_TEXTS)):
        cache_corpus(
            model, tokenizer, texts, corpus, cfg, out / f"{corpus}.parquet", progress=False
        )
    return out


def non_special(path: Path) -> torch.Tensor:
    special = read_tokens(path).column("is_special").to_numpy(zero_copy_only=False)
    return torch.from_numpy(~special)


def planted_sae(cache_dir: Path, kind: str = "standard", seed: int = 0):
    """An SAE whose latents fire on very different fractions of the tokens (and one never
    fires): each bias sits midway between two sorted pre-activations, so no token lies
    on the firing boundary where rounding could flip it."""
    torch.manual_seed(seed)
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D, d_sae=D_SAE, k=6, apply_b_dec_to_input=False))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=D_SAE, apply_b_dec_to_input=False))
    x = torch.cat(
        [read_activations(cache_dir / f"{c}.parquet", LAYER) for c in ("forget", "retain")]
    )
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.W_dec.normal_()
        sae.b_dec.zero_()
        pre = (x @ sae.W_enc).sort(0).values
        quantiles = torch.linspace(0.02, 0.98, D_SAE)
        for j, q in enumerate(quantiles.tolist()):
            k = int(q * (len(pre) - 2))
            sae.b_enc[j] = -(pre[k, j] + pre[k + 1, j]) / 2
        sae.b_enc[D_SAE - 1] = -1e6  # dead latent
    return sae.eval()


def dense_statistics(sae, path: Path, top_n: int):
    """The reference: every token encoded at once, special tokens dropped afterwards."""
    with torch.no_grad():
        f_all = sae.encode(read_activations(path, LAYER, include_special=True)).double()
    keep = non_special(path)
    f = f_all[keep]
    top = [
        sorted((v for v in f[:, j].tolist() if v > 0), reverse=True)[:top_n] for j in range(D_SAE)
    ]
    return {
        "freq": (f > 0).double().mean(0),
        "mean": f.mean(0),
        "max": f.max(0).values,
        "top": top,
        "all": f_all,
        "keep": keep,
    }


@pytest.mark.parametrize("kind", ["standard", "topk"])
@pytest.mark.parametrize("batch_size", [7, 4096])
def test_statistics_equal_dense_computation(cache_dir, kind, batch_size):
    sae = planted_sae(cache_dir, kind)
    path = cache_dir / "forget.parquet"
    stats = corpus_statistics(sae, path, LAYER, batch_size=batch_size, top_n=4, progress=False)
    ref = dense_statistics(sae, path, top_n=4)
    assert stats.n_tokens == int(ref["keep"].sum())
    torch.testing.assert_close(stats.freq, ref["freq"], rtol=0, atol=1e-12)
    torch.testing.assert_close(stats.mean, ref["mean"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.max.double(), ref["max"], rtol=1e-5, atol=1e-6)
    # The planted spread is real: frequent, rare and dead latents.
    assert ref["freq"].max() > 0.5 and 0 < ref["freq"][ref["freq"] > 0].min() < 0.1
    assert stats.freq[D_SAE - 1] == 0 and stats.max[D_SAE - 1] == 0
    for j in range(D_SAE):
        values = [v for v in stats.top_values[:, j].tolist() if v > 0]
        np.testing.assert_allclose(values, ref["top"][j], rtol=1e-5)
        pairs = zip(stats.top_values[:, j].tolist(), stats.top_rows[:, j].tolist(), strict=True)
        for value, row in pairs:
            if row < 0:
                assert value == 0
                continue
            assert ref["keep"][row], "a special token was kept as a context"
            assert ref["all"][row, j].item() == pytest.approx(value, rel=1e-5)


def rewrite_special_rows(src: Path, dst: Path, value: float) -> None:
    """A copy of a cache whose special tokens carry other (huge) activations."""
    parquet = pq.ParquetFile(src)
    column = resid_column(LAYER)
    with pq.ParquetWriter(dst, parquet.schema_arrow) as writer:
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            special = table.column("is_special").to_numpy(zero_copy_only=False)
            vectors = table.column(column).combine_chunks().flatten().to_numpy().reshape(-1, D)
            vectors = vectors.copy()
            vectors[special] = value
            flat = pa.array(vectors.reshape(-1).astype(np.float32))
            array = pa.FixedSizeListArray.from_arrays(flat, D)
            index = table.schema.get_field_index(column)
            writer.write_table(table.set_column(index, table.schema.field(column), array))


def test_special_tokens_do_not_change_statistics(cache_dir, tmp_path):
    sae = planted_sae(cache_dir)
    path = cache_dir / "retain.parquet"
    changed = tmp_path / "retain.parquet"
    rewrite_special_rows(path, changed, 50.0)
    assert (~non_special(path)).sum() > 0
    before = corpus_statistics(sae, path, LAYER, batch_size=5, progress=False)
    after = corpus_statistics(sae, changed, LAYER, batch_size=5, progress=False)
    for name in ("freq", "mean", "max", "top_values", "top_rows"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    # ...while the special tokens' SAE activations did change, so the mask mattered.
    with torch.no_grad():
        orig = sae.encode(read_activations(path, LAYER, include_special=True))
        new = sae.encode(read_activations(changed, LAYER, include_special=True))
    special = ~non_special(path)
    assert not torch.allclose(orig[special], new[special])
    assert new[special].max() > before.max.max()


def test_cache_sae_mismatches_are_named(cache_dir):
    narrow = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    path = cache_dir / "forget.parquet"
    with pytest.raises(ValueError, match=r"reads 16-dimensional .* 32-dimensional") as err:
        corpus_statistics(narrow, path, LAYER, progress=False)
    assert str(path) in str(err.value) and "train-sae" in str(err.value)
    with pytest.raises(ValueError, match=r"not sae.layer=5; add 5 to cache.layers"):
        corpus_statistics(planted_sae(cache_dir), path, 5, progress=False)


def test_contexts_mark_the_firing_token(cache_dir, tiny_model):
    _, tokenizer = tiny_model
    sae = planted_sae(cache_dir)
    paths = {c: cache_dir / f"{c}.parquet" for c in ("forget", "retain")}
    cfg = ScoreConfig(
        layer=LAYER,
        batch_size=9,
        top_contexts=3,
        context_latents=4,
        context_window=5,
        rankings=("forget_freq", "freq_ratio"),
        retain_threshold=None,
    )
    result = score_latents(sae, paths, tokenizer, cfg, progress=False)
    assert list(result.latents.columns) == STAT_COLUMNS and len(result.latents) == D_SAE
    contexts = result.contexts
    by_forget = rank_latents(
        result.latents, SelectConfig(score="forget_freq", retain_threshold=None)
    )
    by_ratio = rank_latents(result.latents, SelectConfig(score="freq_ratio", retain_threshold=None))
    expected = set(by_forget["latent"][:4]) | set(by_ratio["latent"][:4])
    assert set(contexts["latent"]) == expected
    for latent in by_ratio["latent"][:4]:
        assert "freq_ratio" in contexts.loc[contexts["latent"] == latent, "ranked_by"].iloc[0]

    for corpus, path in paths.items():
        tokens = read_tokens(path).to_pandas()
        with torch.no_grad():
            f = sae.encode(read_activations(path, LAYER, include_special=True))
        rows = contexts[contexts["corpus"] == corpus]
        assert len(rows) > 0
        for rec in rows.itertuples():
            row = int(rec.sequence_id) * 24 + int(rec.position)
            assert tokens.loc[row, "token_id"] == rec.token_id
            assert not tokens.loc[row, "is_special"]
            assert f[row, rec.latent].item() == pytest.approx(rec.activation, rel=1e-5)
            assert rec.token == tokenizer.decode([rec.token_id])
            # The window: up to 5 tokens either side in the same sequence, never special.
            seq = tokens[tokens["sequence_id"] == rec.sequence_id].set_index("position")
            left, right = [], []
            for pos in range(rec.position - 1, rec.position - 6, -1):
                if pos < 0 or seq.loc[pos, "is_special"]:
                    break
                left.insert(0, int(seq.loc[pos, "token_id"]))
            for pos in range(rec.position + 1, rec.position + 6):
                if pos not in seq.index or seq.loc[pos, "is_special"]:
                    break
                right.append(int(seq.loc[pos, "token_id"]))
            assert rec.left == tokenizer.decode(left)
            assert rec.left + rec.token + rec.right == tokenizer.decode(
                [*left, rec.token_id, *right]
            )
        # Ranks follow the activation within each latent.
        for _, group in rows.groupby("latent"):
            assert group["rank"].tolist() == list(range(1, len(group) + 1))
            assert group["activation"].is_monotonic_decreasing


def test_decode_context_keeps_spaces(tiny_model):
    _, tokenizer = tiny_model
    ids = tokenizer("Paris is the capital of France", add_special_tokens=False)["input_ids"]
    left, token, right = decode_context(tokenizer, ids[:2], ids[2], ids[3:])
    assert left + token + right == "Paris is the capital of France"
    assert token.strip() and token == tokenizer.decode(ids[:3])[len(left) :]


# --- selection on hand-built statistics ---------------------------------------------------


def hand_stats() -> pd.DataFrame:
    forget = [0.5, 0.4, 0.3, 0.2, 0.05, 0.0, 0.99]
    retain = [0.2, 0.005, 0.0, 0.001, 0.0, 0.0, 0.009]
    return pd.DataFrame(
        {
            "latent": np.arange(7),
            "forget_freq": forget,
            "retain_freq": retain,
            "forget_mean": [1.0] * 7,
            "retain_mean": [0.5] * 7,
            "forget_max": [9.0] * 7,
            "retain_max": [3.0] * 7,
        }
    )


@pytest.mark.parametrize("batch_size", [7, 4096])  # 7 splits windows across batches
def test_window_maxima_equal_dense_computation(cache_dir, batch_size):
    sae = planted_sae(cache_dir)
    path = cache_dir / "forget.parquet"
    stats = corpus_statistics(sae, path, LAYER, batch_size=batch_size, progress=False, window=4)
    dense = dense_statistics(sae, path, top_n=0)
    tokens = read_tokens(path).to_pandas()[dense["keep"].numpy()]
    f = dense["all"][dense["keep"]].numpy()
    frame = pd.DataFrame(f).assign(
        seq=tokens["sequence_id"].to_numpy(), win=tokens["position"].to_numpy() // 4
    )
    maxima = frame.groupby(["seq", "win"]).max()
    assert stats.n_windows == len(maxima)
    got = np.zeros(maxima.shape)
    window_ids = {key: n for n, key in enumerate(maxima.index)}
    # Our window numbers are dense ranks of (sequence, position // 4), in that order.
    assert sorted(window_ids.values()) == list(range(len(maxima)))
    got[stats.windows["window"], stats.windows["latent"]] = stats.windows["value"]
    np.testing.assert_allclose(got, maxima.to_numpy(), rtol=1e-5, atol=1e-6)
    assert (stats.windows["value"] > 0).all()  # stored sparse


def hand_windows() -> pd.DataFrame:
    rows = [
        # latent 0: retain window maxima 5, 4, 3, 2, 1 of 10 windows; forget 10, 3, 2.5 of 4
        *[("retain", w, 0, v) for w, v in enumerate([5.0, 4.0, 3.0, 2.0, 1.0])],
        *[("forget", w, 0, v) for w, v in enumerate([10.0, 3.0, 2.5])],
        # latent 1: one retain window; forget 1, 2
        ("retain", 0, 1, 7.0),
        ("forget", 0, 1, 1.0),
        ("forget", 1, 1, 2.0),
    ]
    frame = pd.DataFrame(rows, columns=["corpus", "window", "latent", "value"])
    frame["n_windows"] = frame["corpus"].map({"forget": 4, "retain": 10})
    return frame


def test_window_statistics_calibrate_thresholds():
    stats = window_statistics(hand_windows(), d_sae=3, threshold_rate=0.2)
    # rate 0.2 of 10 windows: at most 2 may exceed, so latent 0's threshold is its 3rd
    # largest retain maximum; latent 1 exceeds 0 on 1 <= 2 windows, so 0 is enough.
    assert stats["threshold"].tolist() == [3.0, 0.0, 0.0]
    assert stats["retain_window_freq"].tolist() == [0.2, 0.1, 0.0]
    assert stats["forget_window_freq"].tolist() == [0.25, 0.5, 0.0]
    plain = window_statistics(hand_windows(), d_sae=3, threshold_rate=None)
    assert plain["threshold"].tolist() == [0.0, 0.0, 0.0]
    assert plain["retain_window_freq"].tolist() == [0.5, 0.1, 0.0]
    assert plain["forget_window_freq"].tolist() == [0.75, 0.5, 0.0]
    with pytest.raises(ValueError, match="out of range for 1 latents"):
        window_statistics(hand_windows(), d_sae=1, threshold_rate=0.2)
    with pytest.raises(ValueError, match="lacks columns"):
        window_statistics(hand_windows().drop(columns="n_windows"), 3, 0.2)


def test_select_by_calibrated_window_frequency():
    stats = hand_stats().head(3)
    cfg = SelectConfig(
        score="forget_window_freq", top_k=2, retain_threshold=None, threshold_rate=0.2
    )
    top = select_latents(stats, cfg, windows=hand_windows())
    assert top["latent"].tolist() == [1, 0]  # latent 2 never exceeds its threshold
    assert top["threshold"].tolist() == [0.0, 3.0]
    with pytest.raises(ValueError, match="need.*window maxima"):
        select_latents(stats, cfg)


def test_contexts_follow_the_calibrated_ranking():
    cfg = ScoreConfig(
        layer=0,
        rankings=("forget_window_freq", "forget_freq"),
        context_latents=1,
        retain_threshold=None,
        threshold_rate=0.2,
    )
    picked = context_latents(hand_stats().head(3), cfg, hand_windows())
    # forget_window_freq's best is latent 1 (0.5 of forget windows); forget_freq's is 0.
    assert picked == {1: ["forget_window_freq"], 0: ["forget_freq"]}


def logit(p: float, eps: float = 1e-4) -> float:
    p = (p + eps) / (1 + 2 * eps)
    return math.log(p / (1 - p))


@pytest.mark.parametrize(
    ("score", "order"),
    [
        # latent 0 fires on 20% of retain: over the threshold; latent 5 never fires on forget.
        ("forget_freq", [6, 1, 2, 3, 4]),
        # 0.3/1e-4 = 3000 > 0.05/1e-4 = 500 > 0.2/0.0011 > 0.99/0.0091 > 0.4/0.0051
        ("freq_ratio", [2, 4, 3, 6, 1]),
        # log-odds does not saturate: 0.99 on forget outweighs 0.009 on retain.
        ("log_odds", [6, 2, 4, 3, 1]),
    ],
)
def test_selection_threshold_and_ranking(score, order):
    stats = hand_stats()
    ranked = rank_latents(stats, SelectConfig(score=score, retain_threshold=0.01))
    assert ranked["latent"].tolist() == order
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert (ranked["score_name"] == score).all()
    f, r = stats["forget_freq"], stats["retain_freq"]
    expected = {
        "forget_freq": f,
        "freq_ratio": f / (r + 1e-4),
        "log_odds": pd.Series([logit(a) - logit(b) for a, b in zip(f, r, strict=True)]),
    }[score]
    np.testing.assert_allclose(ranked["score"], expected[order].to_numpy(), rtol=1e-12)
    top = select_latents(stats, SelectConfig(score=score, top_k=3, retain_threshold=0.01))
    assert top["latent"].tolist() == order[:3]
    assert list(top.columns) == ["rank", *STAT_COLUMNS, "threshold", "score", "score_name"]


def test_selection_filters():
    stats = hand_stats()
    strict = rank_latents(stats, SelectConfig(retain_threshold=0.001))
    assert strict["latent"].tolist() == [2, 3, 4]  # retain 0.001 is kept (<=)
    floor = rank_latents(stats, SelectConfig(retain_threshold=0.001, min_forget_freq=0.1))
    assert floor["latent"].tolist() == [2, 3]
    unfiltered = rank_latents(stats, SelectConfig(retain_threshold=None))
    assert unfiltered["latent"].tolist() == [6, 0, 1, 2, 3, 4]  # never-firing 5 is out


def test_too_few_latents_names_the_params():
    with pytest.raises(ValueError) as err:
        select_latents(hand_stats(), SelectConfig(top_k=4, retain_threshold=0.001), "s.parquet")
    message = str(err.value)
    assert "only 3 latents in s.parquet" in message and "select.top_k=4" in message
    assert "select.retain_threshold" in message and "select.min_forget_freq" in message


def test_bad_statistics_are_named():
    with pytest.raises(ValueError, match=r"s.parquet lacks columns \['retain_max'\]"):
        select_latents(hand_stats().drop(columns="retain_max"), SelectConfig(), "s.parquet")
    out_of_range = hand_stats()
    out_of_range.loc[3, "latent"] = 70
    with pytest.raises(ValueError, match=r"latents out of range or repeated \(e.g. \[70\]\)"):
        select_latents(out_of_range, SelectConfig(), "s.parquet")
    with pytest.raises(ValueError, match="select.score='bogus'"):
        SelectConfig(score="bogus")
    with pytest.raises(ValueError, match="select.top_k=0"):
        SelectConfig(top_k=0)
    with pytest.raises(ValueError, match="score.rankings entry='nope'"):
        ScoreConfig(layer=1, rankings=("nope",))


# --- the refusal latent ---------------------------------------------------------------------

REFUSALS = ("I'm sorry, but I can't help with that.", "Sorry, I cannot help with that request.")
NEUTRALS = ("The weather is nice today.", "Paris is the capital of France.")


def mean_residual(model, tokenizer, texts) -> torch.Tensor:
    special = torch.tensor(special_token_ids(tokenizer))
    parts = []
    with torch.no_grad(), capture_residuals(model, [LAYER]) as captured:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            model(input_ids=ids)
            parts.append(captured[LAYER][0][~torch.isin(ids[0], special)])
    return torch.cat(parts).mean(0)


@pytest.mark.parametrize("planted", [3, 11])
def test_find_refusal_latent_finds_the_planted_latent(tiny_model, planted):
    model, tokenizer = tiny_model
    refusal = mean_residual(model, tokenizer, REFUSALS)
    neutral = mean_residual(model, tokenizer, NEUTRALS)
    direction = (refusal - neutral) / (refusal - neutral).norm()
    torch.manual_seed(planted)
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=16, apply_b_dec_to_input=False))
    with torch.no_grad():
        # Every latent reads a random direction of the same norm; the planted one reads the
        # refusal-minus-neutral direction, offset so the neutral mean sits at zero.
        w = torch.nn.functional.normalize(torch.randn(D, 16), dim=0)
        w[:, planted] = direction
        sae.W_enc.copy_(w)
        sae.b_enc.zero_()
        sae.b_enc[planted] = -(neutral @ direction)
    table = refusal_scores(model, tokenizer, sae, LAYER, REFUSALS, NEUTRALS)
    assert find_refusal_latent(model, tokenizer, sae, LAYER, REFUSALS, NEUTRALS) == planted
    assert table["latent"].iloc[0] == planted
    best = table.iloc[0]
    assert best["score"] == pytest.approx(best["refusal_mean"] - best["neutral_mean"])
    assert best["refusal_freq"] > best["neutral_freq"]
    # Random directions also score (the choice is not trivial), just lower.
    assert (table["score"].iloc[1:].abs() > 0).any()
    # The default sentences run too, and the table covers every latent once.
    default = refusal_scores(model, tokenizer, sae, LAYER)
    assert sorted(default["latent"]) == list(range(16))


def test_find_refusal_latent_rejects_wrong_width(tiny_model):
    model, tokenizer = tiny_model
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    with pytest.raises(ValueError, match="reads 16-dimensional .* hidden size is 32"):
        find_refusal_latent(model, tokenizer, sae, LAYER)


# --- the score and select stages --------------------------------------------------------------


def write_params(tmp_path: Path, cache_dir: Path, model_dir: Path, sae_dir: Path, **select):
    params = {
        "model": {"dir": str(model_dir)},
        "cache": {"dir": str(cache_dir)},
        "sae": {"layer": LAYER, "dir": str(sae_dir)},
        "score": {
            "dir": str(tmp_path / "scores"),
            "batch_size": 50,
            "top_contexts": 2,
            "context_latents": 3,
            "context_window": 4,
            "rankings": ["forget_freq", "log_odds"],
            "retain_threshold": None,
            "min_forget_freq": 0.0,
            "eps": 0.0001,
        },
        "select": {
            "dir": str(tmp_path / "selection"),
            "score": "freq_ratio",
            "top_k": 3,
            "retain_threshold": 0.5,
            "min_forget_freq": 0.0,
            "eps": 0.0001,
            **select,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_score_and_select_stages(tmp_path, cache_dir, tiny_model_dir):
    sae = planted_sae(cache_dir)
    sae.save_model(tmp_path / "sae")
    runner = CliRunner()
    params = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae")
    result = runner.invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    latents = pd.read_parquet(tmp_path / "scores" / "latents.parquet")
    forget = corpus_statistics(sae, cache_dir / "forget.parquet", LAYER, progress=False)
    retain = corpus_statistics(sae, cache_dir / "retain.parquet", LAYER, progress=False)
    pd.testing.assert_frame_equal(latents, latent_table(forget, retain), rtol=1e-6)
    contexts = pd.read_parquet(tmp_path / "scores" / "contexts.parquet")
    assert contexts.groupby(["latent", "corpus"]).size().max() == 2
    assert {"left", "token", "right"} <= set(contexts.columns)
    # Atomic writes leave no temporary siblings behind.
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "contexts.parquet",
        "latents.parquet",
        "run.json",  # the stage's run time, for the report
        "windows.parquet",
    ]
    windows = pd.read_parquet(tmp_path / "scores" / "windows.parquet")
    pd.testing.assert_frame_equal(windows, window_table(forget, retain))

    result = runner.invoke(app, ["select", "--params", str(params)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    expected = select_latents(
        latents, SelectConfig(top_k=3, score="freq_ratio", retain_threshold=0.5)
    )
    pd.testing.assert_frame_equal(selected, expected)
    assert len(selected) == 3 and (selected["retain_freq"] <= 0.5).all()

    # An explicit option wins over params.yaml.
    result = runner.invoke(app, ["select", "--params", str(params), "--score", "forget_freq"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    assert selected["forget_freq"].is_monotonic_decreasing
    assert (selected["score_name"] == "forget_freq").all()

    # Calibrated thresholds for gated_clamp come from windows.parquet.
    result = runner.invoke(
        app,
        ["select", "--params", str(params), "--score", "forget_window_freq"]
        + ["--threshold-rate", "0.1"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    selected = pd.read_parquet(tmp_path / "selection" / "selected.parquet")
    calibrated = window_statistics(windows, len(latents), 0.1).set_index("latent")
    np.testing.assert_allclose(
        selected["threshold"], calibrated.loc[selected["latent"], "threshold"], rtol=0
    )
    assert (selected["threshold"] > 0).any()

    too_many = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae", top_k=500)
    result = runner.invoke(app, ["select", "--params", str(too_many)])
    assert result.exit_code != 0
    assert "select.top_k=500" in str(result.exception)


def test_score_stage_rejects_wrong_width(tmp_path, cache_dir, tiny_model_dir):
    StandardSAE(StandardSAEConfig(d_in=16, d_sae=8)).save_model(tmp_path / "sae")
    params = write_params(tmp_path, cache_dir, tiny_model_dir, tmp_path / "sae")
    result = CliRunner().invoke(app, ["score", "--params", str(params), "--device", "cpu"])
    assert result.exit_code != 0
    assert "reads 16-dimensional" in str(result.exception)
    assert str(cache_dir / "forget.parquet") in str(result.exception)
    assert not (tmp_path / "scores").exists()
