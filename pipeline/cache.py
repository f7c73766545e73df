"""cache: residual activations of every prepared corpus (forget, retain and, when prepared,
retain_near) at the cached layers, one file each."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.activations.cache import CacheConfig, cache_corpus, summary_dict
from sae_unlearn.activations.schema import CORPORA, REQUIRED_CORPORA
from sae_unlearn.errors import UserError
from sae_unlearn.io import write_json
from sae_unlearn.models.layers import check_layer
from sae_unlearn.models.loading import load_model
from sae_unlearn.prepared import prepared_path


def read_corpus_texts(path: Path) -> list[str]:
    if not path.exists():
        raise UserError(f"{path} does not exist; run `sae-unlearn prepare-data` first")
    frame = pd.read_parquet(path)
    if "text" not in frame.columns:
        raise UserError(
            f"{path} has no `text` column (columns: {list(frame.columns)}); "
            "produce it with `sae-unlearn prepare-data`"
        )
    return frame["text"].astype(str).tolist()


def command(
    model_dir: Path | None = typer.Option(None, help="model directory from prepare-model"),
    data_dir: Path | None = typer.Option(None, help="prepared data directory"),
    out_dir: Path | None = typer.Option(None, help="where {forget,retain,retain_near}.parquet go"),
    metrics: Path | None = typer.Option(None, help="cache summary JSON"),
    layers: list[int] | None = typer.Option(None, "--layer", help="layers to cache (repeat)"),
    params: Path = ParamsOption,
) -> None:
    """Residual activations of every prepared corpus, streamed to parquet."""
    p = Params.load(params)
    # sae.layer is deliberately not a dependency of this stage: a layer sweep over
    # already-cached layers must not rerun the model forward (train-sae checks membership).
    cached_layers = list(layers) if layers else list(p.get("cache.layers"))
    cfg = CacheConfig(
        layers=tuple(sorted(set(cached_layers))),
        seq_len=p.get("cache.seq_len"),
        batch_size=p.get("cache.batch_size"),
        max_tokens=p.get("cache.max_tokens"),
    )
    model_path = Path(p.pick(model_dir, "model.dir"))
    data_path = Path(p.pick(data_dir, "data.dir"))
    out_path = Path(p.pick(out_dir, "cache.dir"))
    corpora = {c: prepared_path(data_path, c, "corpus") for c in CORPORA}
    # An optional corpus that was not prepared is not cached, and a stale cache of it goes.
    corpora = {c: f for c, f in corpora.items() if c in REQUIRED_CORPORA or f.exists()}
    for corpus in set(CORPORA) - set(corpora):
        (out_path / f"{corpus}.parquet").unlink(missing_ok=True)
    texts = {corpus: read_corpus_texts(path) for corpus, path in corpora.items()}
    model, tokenizer = load_model(str(model_path), p.get("model.dtype"))
    for layer in cfg.layers:
        check_layer(model, layer, what="cache.layers entry")
    model_name = str(p.get("model.name"))
    summaries = []
    with record_run_time() as timings:
        for corpus, corpus_texts in texts.items():
            out_file = out_path / f"{corpus}.parquet"
            s = cache_corpus(
                model, tokenizer, corpus_texts, corpus, cfg, out_file, model_name=model_name
            )
            summaries.append(s)
            timings[f"{corpus}_tokens_per_second"] = s.tokens_per_second
            typer.echo(f"cached {s.corpus}: {s.n_tokens} tokens at {s.tokens_per_second} tok/s")
    write_json(p.pick(metrics, "cache.metrics"), summary_dict(summaries, cfg.layers))
