"""A sweep split across machines, as README's "Sweeps on several machines" runs it.

Two clones of one git remote (a local bare repo) share a DVC remote (a local folder). The first
runs the pipeline, commits dvc.lock and pushes data and git; the second pulls, so its sweep
points rerun only the swept stages. Each queues its share of the clamp values
(`dvc exp run --queue`), runs it with `dvc queue start -j 1`, both at once as two machines would,
pushes its experiments (`dvc exp push`) and pulls the other's (`dvc exp pull`); then
`sae-unlearn compare` on either sees all four.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.test_dag_e2e import make_tiny_repo, ran_stages, run, run_process

pytestmark = pytest.mark.slow

# Each machine's share of the sweep; the committed baseline runs clamp.value -20.
SHARES = {"a": (-10.0, -30.0), "b": (-40.0, -60.0)}
# compare reads evaluate's metrics only, so the sweep stops there (`dvc exp run ... evaluate`)
# and the attack stages stay out of the test's time.
TARGET = "evaluate"
QUEUE_TIMEOUT_S = 900


def queue_tasks(repo: Path) -> dict[str, str]:
    """Experiment name -> status, from `dvc queue status`'s task table."""
    lines = run(["dvc", "queue", "status"], repo).splitlines()
    tasks = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("Worker status"):
            break
        _task, name, *_created, status = line.split()
        tasks[name] = status
    return tasks


def wait_for_queues(repos: list[Path]) -> dict[Path, dict[str, str]]:
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        tasks = {repo: queue_tasks(repo) for repo in repos}
        statuses = [s for t in tasks.values() for s in t.values()]
        if not {"Queued", "Running"} & set(statuses):
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"queues still busy after {QUEUE_TIMEOUT_S} s: {tasks}")
        time.sleep(3)


def experiments(repo: Path) -> dict[str, dict]:
    """Experiment name -> {rev, clamp.value, steered metrics} of the baseline commit's
    experiments, as `dvc exp show --json` gives them."""
    data = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    out = {}
    for commit in data:
        for exp in commit.get("experiments") or []:
            rev = exp["revs"][0]
            payload = rev["data"]
            out[exp["name"]] = {
                "rev": rev["rev"],
                "clamp.value": payload["params"]["params.yaml"]["data"]["clamp"]["value"],
                "steered": payload["metrics"]["metrics/steered.json"]["data"],
            }
    return out


def test_sweep_split_across_two_machines_meets_in_compare(tmp_path):
    origin = tmp_path / "origin.git"
    storage = tmp_path / "dvc-storage"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)

    # Machine a: the pipeline once, its lock and data published.
    a = make_tiny_repo(tmp_path / "a")
    run(["dvc", "repro", TARGET], a)
    run(["dvc", "remote", "add", "-d", "storage", str(storage)], a)
    run(["git", "remote", "add", "origin", str(origin)], a)
    run(["git", "add", "-A"], a)
    run(["git", "commit", "-qm", "repro"], a)
    run(["dvc", "push", "--with-deps", TARGET], a)
    run(["git", "push", "-q", "origin", "main"], a)

    # Machine b: a clone with the published outputs, nothing stale.
    b = tmp_path / "b"
    run(["git", "clone", "-q", str(origin), str(b)], tmp_path)
    run(["git", "config", "user.email", "b@sae-unlearn.invalid"], b)
    run(["git", "config", "user.name", "b"], b)
    run(["dvc", "pull", "--with-deps", TARGET], b)
    assert "Data and pipelines are up to date" in run(["dvc", "status", TARGET], b)
    machines = {"a": a, "b": b}
    baseline = run(["git", "rev-parse", "HEAD"], a).strip()
    assert run(["git", "rev-parse", "HEAD"], b).strip() == baseline

    try:
        for name, repo in machines.items():
            values = ",".join(str(v) for v in SHARES[name])
            run(["dvc", "exp", "run", "--queue", "-S", f"clamp.value={values}", TARGET], repo)
        for repo in machines.values():
            run(["dvc", "queue", "start", "-j", "1"], repo)
        tasks = wait_for_queues(list(machines.values()))
    finally:
        for repo in machines.values():
            run_process(["dvc", "queue", "stop"], repo)

    own = {}
    for name, repo in machines.items():
        failed = {exp: s for exp, s in tasks[repo].items() if s != "Success"}
        logs = {exp: run_process(["dvc", "queue", "logs", exp], repo).stdout for exp in failed}
        assert not failed, f"{name}: {failed}\n" + "\n".join(v[-3000:] for v in logs.values())
        own[name] = experiments(repo)
        assert sorted(e["clamp.value"] for e in own[name].values()) == sorted(SHARES[name])
        for exp in own[name]:
            # the pulled cache served every stage above the swept ones
            log = run(["dvc", "queue", "logs", exp], repo)
            assert ran_stages(log) == {"clamp-config", "evaluate"}

    for name, repo in machines.items():
        pushed = run(["dvc", "exp", "push", "origin"], repo)
        assert all(exp in pushed for exp in own[name])
    for repo in machines.values():
        run(["dvc", "exp", "pull", "origin"], repo)

    everything = {**own["a"], **own["b"]}
    assert len(everything) == 4
    for name, repo in machines.items():
        # the other machine's experiments arrive whole: same commit, params and metrics
        assert experiments(repo) == everything
        out = tmp_path / f"compare-{name}"
        shown = run(["sae-unlearn", "compare", "--out-dir", str(out)], repo)
        assert shown.startswith("5 experiments")  # the baseline commit and the four points
        table = pd.read_csv(out / "compare.csv").set_index("experiment")
        assert set(table.index) == {"main", *everything}
        assert table.loc["main", "clamp.value"] == -20.0
        for exp, record in everything.items():
            row = table.loc[exp]
            assert row["rev"] == record["rev"][:7]
            assert row["clamp.value"] == record["clamp.value"]
            assert row["forget_acc"] == record["steered"]["forget"]["acc"]
            assert row["retain_acc"] == record["steered"]["retain"]["acc"]
            assert row["alignment"] == record["steered"]["alignment"]

    # The outputs came through the DVC remote too: a's workspace takes one of b's points
    # (a clamp config a never computed) from its cache alone. This is `dvc exp apply` limited
    # to the stages that ran: apply checks out every stage's outputs, and the attacks never ran.
    _, record = next(iter(own["b"].items()))
    git_files = ["dvc.lock", "params.yaml", "metrics/steered.json"]
    run(["git", "checkout", record["rev"], "--", *git_files], a)
    run(["dvc", "checkout", "--with-deps", TARGET], a)
    clamp = yaml.safe_load((a / "data/clamp/clamp.yaml").read_text())
    assert clamp["meta"]["value"] == record["clamp.value"]
    assert {row["steering_coefficient"] for row in clamp["rows"]} == {record["clamp.value"]}
    # every output (the clamp config, evaluate's per-question results) has b's hashes
    assert "Data and pipelines are up to date" in run(["dvc", "status", TARGET], a)
