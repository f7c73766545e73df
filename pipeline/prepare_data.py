"""prepare-data: the corpora and question sets of each role as normalised parquet."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.params import Params, ParamsOption
from pipeline.timing import record_run_time
from sae_unlearn.data.prepare import DataConfig, prepare_data


def command(
    forget_corpus: str | None = typer.Option(
        None, help="`embedded` or a .jsonl/.parquet/.txt path"
    ),
    retain_corpus: str | None = typer.Option(None, help="`embedded`, `wikitext` or a path"),
    forget_questions: str | None = typer.Option(None, help="`embedded`, `wmdp-bio` or a path"),
    retain_questions: str | None = typer.Option(None, help="`embedded`, `mmlu` or a path"),
    retain_near_corpus: str | None = typer.Option(None, help="`none` or a path"),
    retain_near_questions: str | None = typer.Option(None, help="`none`, `mmlu-bio` or a path"),
    out_dir: Path | None = typer.Option(None, help="where the parquet files go"),
    max_documents: int | None = typer.Option(None, help="keep the first N documents per corpus"),
    params: Path = ParamsOption,
) -> None:
    """Corpora and question sets (embedded, hub or local files) as validated parquet."""
    with record_run_time():
        p = Params.load(params)
        cfg = DataConfig(
            forget_corpus=str(p.pick(forget_corpus, "data.forget_corpus")),
            retain_corpus=str(p.pick(retain_corpus, "data.retain_corpus")),
            forget_questions=str(p.pick(forget_questions, "data.forget_questions")),
            retain_questions=str(p.pick(retain_questions, "data.retain_questions")),
            retain_near_corpus=str(p.pick(retain_near_corpus, "data.retain_near_corpus")),
            retain_near_questions=str(p.pick(retain_near_questions, "data.retain_near_questions")),
            mmlu_subjects=tuple(p.get("data.mmlu_subjects")),
            wikitext_config=p.get("data.wikitext_config"),
            max_documents=p.pick(max_documents, "data.max_documents"),
        )
        out_path = Path(p.pick(out_dir, "data.dir"))
        summary = prepare_data(cfg, out_path)
        for line in summary.lines():
            typer.echo(line)
        typer.echo(f"prepared data written to {out_path}")
