import json
import time

import psutil
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


def test_stages_finishing_at_once_keep_every_entry(tmp_path):
    """Eight processes merging at once (a `dvc queue start -j 2` writes like this)."""
    import subprocess
    import sys

    path = tmp_path / "timings.json"
    code = (
        "import sys, typer\n"
        "from typer.testing import CliRunner\n"
        "from pipeline.timing import record_run_time\n"
        "app = typer.Typer()\n"
        "@app.command(sys.argv[1])\n"
        "def run():\n"
        "    for _ in range(20):\n"
        f"        with record_run_time(__import__('pathlib').Path({str(path)!r})):\n"
        "            pass\n"
        "@app.command('other')\n"
        "def other(): pass\n"
        "assert CliRunner().invoke(app, [sys.argv[1]]).exit_code == 0\n"
    )
    stages = [f"stage{i}" for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-c", code, s]) for s in stages]
    assert [p.wait() for p in procs] == [0] * 8
    assert sorted(read_timings(path)) == stages


def test_the_env_var_moves_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_UNLEARN_TIMINGS", str(tmp_path / "t.json"))
    app = typer.Typer()

    @app.command("score")
    def score() -> None:
        with record_run_time():
            pass

    @app.command("other")
    def other() -> None:
        pass

    assert CliRunner().invoke(app, ["score"]).exit_code == 0
    assert list(read_timings()) == ["score"] and (tmp_path / "t.json").is_file()


def test_the_process_time_counts_from_the_process_start(tmp_path):
    """A stage's process time includes what ran before its block (imports, model loading)."""
    path = tmp_path / "timings.json"
    before = time.time() - psutil.Process().create_time()
    with record_run_time(path, stage="evaluate"):
        time.sleep(0.2)
    entry = read_timings(path)["evaluate"]
    assert entry["seconds"] >= 0.2
    assert entry["process_seconds"] >= before + 0.2 - 0.1  # rounded to 0.1 s
    assert entry["process_seconds"] >= entry["seconds"]
