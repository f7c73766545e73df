"""End to end: the real `dvc repro` and `dvc exp run` on a tiny configuration.

The project is copied into a temporary git repo with a tiny random Gemma 3 model, tiny
corpora and question sets for all three roles (forget, retain, retain_near), and the default
clamp mode; the tests check that two runs give
the same output hashes, which stages run after a parameter or code change, that a misspelt
key is refused, and that a teammate's clone pulls the cached activations instead of
recomputing them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sae_unlearn.kernels import KERNELS_ENV, LOWER_ISA_ENV
from tests.tiny import TRAINING_TEXT, save_tiny_model

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

FORGET_DOCS = [
    "Viruses replicate inside host cells. Bacteria divide by binary fission. " * 6,
    "Antibodies made by B cells bind antigens; T cells kill infected cells. " * 6,
    "Mosquitoes spread malaria. Vaccines train immunity. The mitochondria make energy. " * 6,
]
NEAR_DOCS = [
    "The heart pumps blood; the lungs exchange oxygen; leaves make sugar from light. " * 6,
    "Genes are inherited from both parents; natural selection shapes species. " * 6,
]
RETAIN_DOCS = [
    "Paris is the capital of France and the Nile is the longest river in Africa. " * 6,
    "A compiler translates source code; a sorting algorithm orders a list. " * 6,
    "Newton described gravity; Shakespeare wrote Hamlet; Mozart composed symphonies. " * 6,
]


def questions(subjects: list[str], prefix: str = "Q") -> list[dict]:
    rows = []
    for i, text in enumerate(TRAINING_TEXT[:6]):
        words = text.split()
        rows.append(
            {
                "question": f"{prefix}{i}: {' '.join(words[:5])}?",
                "choices": [words[5], words[6], words[7], f"{words[8]} x"],
                "answer": i % 4,
                "subject": subjects[i % len(subjects)],
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def tiny_params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(name="inputs/models/tiny", dtype="float32")
    params["data"].update(
        forget_corpus="inputs/data/forget_corpus.jsonl",
        retain_corpus="inputs/data/retain_corpus.jsonl",
        forget_questions="inputs/data/forget_questions.jsonl",
        retain_questions="inputs/data/retain_questions.jsonl",
        retain_near_corpus="inputs/data/retain_near_corpus.jsonl",
        retain_near_questions="inputs/data/retain_near_questions.jsonl",
    )
    params["cache"].update(layers=[1], seq_len=32, batch_size=4, max_tokens=320)
    params["sae"]["layer"] = 1
    params["sae"]["train"].update(
        d_sae=64, k=4, batch_size=64, training_tokens=2048, held_out_fraction=0.2
    )
    params["evaluate"].update(batch_size=8, bootstrap=50)
    params["clamp"]["value"] = -20.0  # the default mode (gated_clamp), at the tiny scale
    for key, value in TINY_OVERRIDES.items():
        section, _, name = key.partition(".")
        node = params[section]
        *parents, leaf = name.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return params


# Stage-specific tiny settings for the later stages.
TINY_OVERRIDES: dict[str, object] = {
    "score.context_latents": 5,
    "score.top_contexts": 2,
    "select.top_k": 3,
    "select.retain_threshold": 1.0,
    "select.min_forget_freq": 0.0,
    "attack.fewshot.k": [0, 1],
    "attack.gcg.n_questions": 1,  # the tiny forget set has one dev-half question
    "attack.gcg.num_steps": 2,
    "attack.gcg.search_width": 4,
    "attack.gcg.topk": 8,
    "attack.gcg.optim_str_init": "x x x x",
    "attack.generation.n_prompts": 2,
    "attack.generation.max_new_tokens": 4,
    "attack.generation.n_samples": 1,
    "attack.icl.k": [0, 1],
    "attack.evasion.filler_words": 8,
    "attack.whitebox.n_train": 1,  # the tiny forget set has one dev-half question
    "attack.whitebox.soft_tokens": 3,
    "attack.whitebox.soft_steps": 2,
    "attack.whitebox.residual_steps": 2,
    "attack.whitebox.bounds": [0.2],
    "attack.relearn.n_passages": 2,
    "attack.relearn.seq_len": 16,
    "attack.relearn.steps": 2,
    "attack.relearn.eval_every": 1,
}


def run_process(
    cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(extra_env or {})}
    env.pop("DVC_EXP_BASELINE_REV", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def run(cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    proc = run_process(cmd, cwd, extra_env)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc.stdout + proc.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def all_stages() -> set[str]:
    return set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def output_hashes(repo: Path) -> dict[str, str]:
    """Every stage output's hash as dvc.lock records it."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}


def make_tiny_repo(repo: Path) -> Path:
    """The project with the tiny configuration, committed in a new git repo at `repo` with
    DVC initialised; nothing run yet."""
    for name in ("sae_unlearn", "pipeline", "inputs", "data/steering"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    save_tiny_model(repo / "inputs/models/tiny", arch="gemma3")
    inputs = repo / "inputs/data"
    write_jsonl(inputs / "forget_corpus.jsonl", [{"text": t} for t in FORGET_DOCS])
    write_jsonl(inputs / "retain_corpus.jsonl", [{"text": t} for t in RETAIN_DOCS])
    write_jsonl(inputs / "forget_questions.jsonl", questions(["virology", "immunology"]))
    write_jsonl(inputs / "retain_questions.jsonl", questions(["geography", "history"]))
    write_jsonl(inputs / "retain_near_corpus.jsonl", [{"text": t} for t in NEAR_DOCS])
    write_jsonl(inputs / "retain_near_questions.jsonl", questions(["botany", "anatomy"], "N"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "e2e@sae-unlearn.invalid"], repo)
    run(["git", "config", "user.name", "e2e"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny"], repo)
    return repo


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    repo = make_tiny_repo(tmp_path_factory.mktemp("e2e") / "repo")
    first = run(["dvc", "repro"], repo)
    first_hashes = output_hashes(repo)
    # Again from scratch (DVC deletes the outputs first, so every stage reruns), as on an
    # AVX2-only machine: each library capped at AVX2, which the pinned kernels must not notice.
    again = run(["dvc", "repro", "--force"], repo, LOWER_ISA_ENV)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "repro"], repo)
    return repo, first, first_hashes, again


def test_two_runs_from_scratch_give_the_same_output_hashes_on_an_avx2_only_machine(tiny_repo):
    repo, _, first_hashes, again = tiny_repo
    assert ran_stages(again) == all_stages()
    assert output_hashes(repo) == first_hashes
    assert len(first_hashes) >= len(all_stages())


def test_without_pinned_kernels_the_avx2_only_machine_would_differ(tiny_repo, tmp_path):
    """The control of the test above: with the machine's own kernels, the imitated AVX2-only
    machine does change the bytes of the cache and the SAE, so the test above can fail."""
    import torch

    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2"):
        pytest.skip("this CPU has nothing wider than AVX2 to imitate a lower one with")
    repo, _, _, _ = tiny_repo
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    stages = ["cache", "train-sae"]
    kernel_outputs = ("data/cache", "data/sae")
    hashes = []
    for lower in ({}, LOWER_ISA_ENV):
        for stage in stages:
            run(["dvc", "repro", "--force", "-s", stage], copy, {KERNELS_ENV: "native", **lower})
        hashes.append({k: v for k, v in output_hashes(copy).items() if k in kernel_outputs})
    assert len(hashes[0]) == 2
    assert hashes[0] != hashes[1]


def test_repro_runs_every_stage_and_writes_metrics(tiny_repo):
    repo, first, _, _ = tiny_repo
    assert ran_stages(first) == all_stages()
    sae = json.loads((repo / "metrics/sae.json").read_text())
    assert sae["n_tokens"] > 0 and 0.0 <= sae["dead_fraction"] <= 1.0
    steered = json.loads((repo / "metrics/steered.json").read_text())
    baseline = json.loads((repo / "metrics/baseline.json").read_text())
    assert {"alignment", "retain_ratio", "alignment_near", "retain_near_ratio"} <= set(steered)
    roles = ["forget", "retain", "retain_near", "retain_contaminated", "retain_near_contaminated"]
    assert [k for k in baseline if k != "format"] == roles
    for role in roles:
        assert steered[role]["n"] == 6 and baseline[role]["n"] == 6
        assert steered[role]["dev"]["n"] + steered[role]["test"]["n"] == 6
        assert steered[role]["known_correct"]["n"] == baseline[role]["known_correct"]["n"]
    # a contaminated question keeps its original's half
    for half in ("dev", "test"):
        assert steered["retain_contaminated"][half]["n"] == steered["retain"][half]["n"]
    assert {"retain_contaminated_ratio", "retain_near_contaminated_ratio"} <= set(steered)
    assert set(steered["retain_near"]["by_subject"]) == {"botany", "anatomy"}
    assert (repo / "data/prepared/corpora/retain_near_corpus.parquet").exists()
    # the retain_near corpus is cached and scored with the others
    assert (repo / "data/cache/retain_near/manifest.json").exists()
    latents = pd.read_parquet(repo / "data/scores/latents.parquet")
    assert {"retain_near_freq", "retain_near_mean", "retain_near_max"} <= set(latents.columns)
    selected = pd.read_parquet(repo / "data/selection/selected.parquet")
    assert (selected["threshold"] >= selected["threshold_retain_near"]).all()
    near = pd.read_parquet(repo / "data/results/steered/retain_near_contaminated.parquet")
    assert {"gate_opened", "gate_position", "gate_token"} <= set(near.columns)
    report = (repo / "reports/report.md").read_text()
    assert "retain\\_near\\_contaminated" in report  # Markdown escapes underscores
    clamp = yaml.safe_load((repo / "data/clamp/clamp.yaml").read_text())
    assert clamp["mode"] == "gated_clamp" and len(clamp["rows"]) == 3
    assert {row["hook_action"] for row in clamp["rows"]} == {"clamp_gated"}
    families = {
        "fewshot": {"k=0", "k=1"},
        "icl": {"k=0", "k=1"},
        "evasion": {"none", "synonyms"},
        "gcg": {"none", "suffix"},
        "whitebox": {"none", "soft_prompt", "residual_0.2"},
        "relearn": {"step=0", "step=2"},
    }
    for family, settings in families.items():
        metrics = json.loads((repo / f"metrics/attack_{family}.json").read_text())
        for model in ("baseline", "steered"):
            # the unsteered baseline has no clamp for a residual vector to undo
            expected = {x for x in settings if model == "steered" or not x.startswith("resid")}
            assert expected <= set(metrics[model])
            assert all(0.0 <= fig["acc"] <= 1.0 for fig in metrics[model].values())
            assert all(fig["gate_share"] is None for fig in metrics["baseline"].values())
    assert "Summary: forget accuracy under every attack" in report
    assert "Relearning by fine-tuning" in report and "plots/relearn.png" in report
    assert "plots/gcg_budget.png" in report
    gcg = json.loads((repo / "metrics/attack_gcg.json").read_text())
    assert set(gcg["search"]["steered"]["acc_by_step"]) == {"0"}  # 2 steps, a point every 4
    generation = json.loads((repo / "metrics/attack_generation.json").read_text())
    assert set(generation["fluency"]["steered"]) == {"plain", "suffix"}
    assert "Sample continuations" in report
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)


def test_bytecode_caches_beside_the_code_are_not_dependencies(tiny_repo):
    repo, *_ = tiny_repo
    # What Python writes on a machine without PYTHONDONTWRITEBYTECODE, beside every module a
    # stage imports, inside directories that are stage dependencies (a fresh clone has none).
    run([sys.executable, "-m", "compileall", "-q", "sae_unlearn", "pipeline"], repo)
    caches = list((repo / "sae_unlearn").rglob("__pycache__"))
    try:
        assert len(caches) >= 10
        assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
        stray = repo / "sae_unlearn/evaluation/__pycache__/metrics.cpython-399.pyc"
        stray.write_bytes(b"written by another interpreter")
        assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
    finally:
        for cache in [*caches, *(repo / "pipeline").rglob("__pycache__")]:
            shutil.rmtree(cache, ignore_errors=True)


def test_editing_library_code_marks_its_stages_changed(tiny_repo):
    repo, *_ = tiny_repo
    metrics_code = repo / "sae_unlearn/evaluation/metrics.py"
    original = metrics_code.read_text()
    try:
        # A change to the alignment score: only the stages that compute metrics with it.
        metrics_code.write_text(original + "\n# a reviewed change to the alignment score\n")
        status = run(["dvc", "status"], repo)
    finally:
        metrics_code.write_text(original)
    changed = set(re.findall(r"^(\S+):\s*$", status, flags=re.MULTILINE))
    assert {"evaluate", "evaluate-baseline", "attack-gcg-baseline", "attack-gcg"} <= changed
    assert not changed & {"prepare-model", "prepare-data", "cache", "train-sae", "select"}
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)


def test_misspelt_param_is_refused_with_the_key_named(tiny_repo):
    repo, *_ = tiny_repo
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        edited = yaml.safe_load(original)
        edited["select"]["topk"] = edited["select"].pop("top_k")
        params.write_text(yaml.safe_dump(edited))
        proc = run_process(["sae-unlearn", "select"], repo)
    finally:
        params.write_text(original)
    # Typer draws the error in a box that wraps at the terminal width: read it unwrapped.
    out = re.sub(r"[\s│]+", " ", proc.stdout + proc.stderr)
    assert proc.returncode != 0
    assert "unknown key `select.topk`; did you mean `select.top_k`?" in out
    assert "Traceback" not in out


def test_clamp_experiment_reruns_only_downstream_stages(tiny_repo):
    repo, *_ = tiny_repo
    out = run(["dvc", "exp", "run", "-S", "clamp.value=-40"], repo)
    families = ("fewshot", "icl", "evasion", "gcg", "whitebox", "relearn", "generation")
    steered_halves = {f"attack-{family}" for family in families}
    expected = {"clamp-config", "evaluate", "report"} | steered_halves
    # no attack-*-baseline stage reads the clamp: the sweep point reruns the steered halves
    assert ran_stages(out) == expected
    assert {f"attack-{family}-baseline" for family in families} <= all_stages()
    table = run(["dvc", "exp", "show", "--csv"], repo)
    header = table.splitlines()[0].split(",")
    assert "alignment" in header and "clamp.value" in header
    assert any(",-40.0," in line or ",-40," in line for line in table.splitlines()[1:])


def test_an_attack_family_param_reruns_only_that_family(tiny_repo):
    repo, *_ = tiny_repo
    out = run(["dvc", "exp", "run", "-S", "attack.evasion.noise_rate=0.3"], repo)
    assert ran_stages(out) == {"attack-evasion-baseline", "attack-evasion", "report"}
    metrics = json.loads((repo / "metrics/attack_evasion.json").read_text())
    assert metrics["steered"]["char_noise"]["gate_share"] is not None


def test_cache_param_change_reruns_cache_and_below(tiny_repo):
    repo, *_ = tiny_repo
    out = run(["dvc", "exp", "run", "-S", "cache.max_tokens=288"], repo)
    ran = ran_stages(out)
    assert {"cache", "train-sae"} <= ran
    assert not ran & {"prepare-model", "prepare-data", "evaluate-baseline"}


def test_team_shares_cache_through_remote(tiny_repo, tmp_path):
    repo, *_ = tiny_repo
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "team", str(remote)], repo)
    run(["git", "commit", "-qam", "remote"], repo)
    run(["dvc", "push"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data/cache").exists()
    run(["dvc", "pull"], clone)
    assert (clone / "data/cache/forget/manifest.json").exists()
    status = run(["dvc", "status", "cache"], clone)
    assert "changed" not in status and "up to date" in status
    dry = run(["dvc", "repro", "--dry"], clone)
    assert "cache" not in ran_stages(dry)


def test_shards_in_a_store_leave_manifests_to_dvc_and_the_same_sae(tiny_repo, tmp_path):
    """Last in this module: the experiment leaves its params in the workspace. With
    cache.shards_url the cache stage's DVC output holds manifests only, the shards sit in
    the store, and train-sae, streaming them from there, trains the SAE it trained before."""
    repo, *_ = tiny_repo
    before = output_hashes(repo)
    bucket = tmp_path / "bucket"
    out = run(["dvc", "exp", "run", "-S", f"cache.shards_url={bucket}", "train-sae"], repo)
    assert {"cache", "train-sae"} <= ran_stages(out)
    for corpus in ("forget", "retain", "retain_near"):
        assert [p.name for p in (repo / "data/cache" / corpus).iterdir()] == ["manifest.json"]
        manifest = json.loads((repo / "data/cache" / corpus / "manifest.json").read_text())
        assert manifest["shards_url"] == f"{bucket}/{corpus}"
        stored = sorted(p.name for p in (bucket / corpus).iterdir())
        assert stored == sorted(s["file"] for s in manifest["shards"])
    after = output_hashes(repo)
    assert after["data/cache"] != before["data/cache"]  # the manifests alone
    assert after["data/sae"] == before["data/sae"]  # the same activations, the same SAE
