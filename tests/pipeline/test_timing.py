import json

import typer
from typer.testing import CliRunner

from pipeline.timing import read_timings, record_run_time


def test_run_time_recorded_under_the_sub_command_name(tmp_path):
    path = tmp_path / "logs" / "timings.json"
    app = typer.Typer()

    @app.command("cache")
    def cache() -> None:
        with record_run_time(path) as timings:
            timings["forget_tokens_per_second"] = 12.5

    @app.command("select")
    def select() -> None:
        with record_run_time(path):
            pass

    runner = CliRunner()
    assert runner.invoke(app, ["cache"]).exit_code == 0
    assert runner.invoke(app, ["select"]).exit_code == 0
    timings = read_timings(path)
    assert sorted(timings) == ["cache", "select"]
    assert timings["cache"]["forget_tokens_per_second"] == 12.5
    assert timings["cache"]["seconds"] >= 0.0
    assert json.loads(path.read_text()) == timings


def test_unreadable_timings_start_afresh(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text("{oops")
    assert read_timings(path) == {}
