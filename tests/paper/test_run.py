"""The README's paper command, `dvc exp run -n paper -S ...`, on the offline hub cache.

The project is copied into a temporary git repo (as tests/pipeline/test_dag_e2e.py does) with
the shipped params.yaml; the command runs with `HF_HUB_OFFLINE=1` and `HF_HOME` at the fixture
cache, so every hub name resolves as it does for a user who ran it once online. Only sizes are
added to the README's flags (float32 on CPU, the e2e test's tiny attack budgets, a small cache)
and one setting: `select.retain_threshold=1.0`, because the fixture SAE's latents are random
and fire on retain text as often as on forget text, so the paper's 0.01 would drop them all.
Then the shipped steering CSVs, each as one more `dvc exp run -S clamp.csv=...`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.paper import hub
from tests.paper.conftest import GEMMA2, GEMMA3
from tests.pipeline.test_dag_e2e import ROOT, TINY_OVERRIDES, all_stages, ran_stages, run

pytestmark = pytest.mark.slow

PAPER = [
    f"model.name={GEMMA2}",
    "sae.source=pretrained",
    "sae.release=gemma-scope-2b-pt-res-canonical",
    "sae.sae_id=layer_7/width_16k/canonical",
    "sae.layer=7",
    "cache.layers=[7]",
    "data.forget_questions=wmdp-bio",
    "data.retain_questions=mmlu",
    "data.retain_near_questions=mmlu-bio",
    "data.retain_corpus=wikitext",
    "data.forget_corpus=inputs/data/bio-forget-corpus.jsonl",
    "evaluate.format=letter",
    "clamp.mode=refusal_clamp",
    "clamp.refusal_latent=15864",
    "clamp.value=-500",
    "clamp.threshold=0.05",
    "select.top_k=10",
    "select.score=forget_freq",
    "select.retain_threshold=0.01",
    "select.threshold_rate=null",
]
# Sizes for a 2-core CPU; the retain threshold as the module docstring says.
TINY = [
    "model.dtype=float32",
    "select.retain_threshold=1.0",
    "data.max_documents=4",
    "cache.seq_len=32",
    "cache.batch_size=4",
    "cache.max_tokens=256",
    "evaluate.batch_size=8",
    "evaluate.bootstrap=50",
    "score.context_latents=5",
    "score.top_contexts=2",
] + [f"{k}={json.dumps(v)}" for k, v in TINY_OVERRIDES.items() if not k.startswith("select.")]
FORGET_DOCS = [
    "Viruses replicate inside host cells; the influenza virus binds sialic acid receptors. " * 4,
    "Bacterial toxins such as anthrax lethal factor cleave kinases in host cells. " * 4,
    "Pathogens spread by aerosols; mosquitoes carry malaria parasites between hosts. " * 4,
]
METRICS = ["cache", "sae", "baseline", "steered"] + [
    f"attack_{f}" for f in ("fewshot", "icl", "evasion", "gcg", "whitebox", "relearn", "generation")
]


def flags(settings: list[str]) -> list[str]:
    return [arg for setting in settings for arg in ("-S", setting)]


def hub_env(home: Path) -> dict[str, str]:
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def paper_repo(base: Path) -> Path:
    repo = base / "repo"
    for name in ("sae_unlearn", "pipeline", "inputs", "data/steering"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    corpus = repo / "inputs/data/bio-forget-corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in FORGET_DOCS))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "paper@sae-unlearn.invalid"], repo)
    run(["git", "config", "user.name", "paper"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "paper"], repo)
    return repo


@pytest.fixture(scope="module")
def paper_run(hub_home, tmp_path_factory):
    repo = paper_repo(tmp_path_factory.mktemp("paper"))
    env = hub_env(hub_home)
    out = run(["dvc", "exp", "run", "-n", "paper", *flags(PAPER + TINY)], repo, env)
    return repo, env, out


def sae_cfg(repo: Path) -> dict:
    return json.loads((repo / "data/sae/cfg.json").read_text())


def test_the_paper_command_runs_every_stage_offline(paper_run):
    repo, _, out = paper_run
    assert ran_stages(out) == all_stages()
    cfg = sae_cfg(repo)
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"]) == ("jumprelu", 2304, 16384)
    assert cfg["metadata"]["hook_name"] == "blocks.7.hook_resid_post"
    assert cfg["metadata"]["sae_lens_release"] == "gemma-scope-2b-pt-res-canonical"
    sae = json.loads((repo / "metrics/sae.json").read_text())
    assert sae["d_sae"] == 16384 and sae["source"] == "pretrained" and sae["layer"] == 7
    for name in METRICS:
        assert json.loads((repo / f"metrics/{name}.json").read_text()), name
    baseline = json.loads((repo / "metrics/baseline.json").read_text())
    assert baseline["format"] == "letter"
    assert baseline["forget"]["n"] == 8 and set(baseline["forget"]["by_subject"]) == {"wmdp_bio"}
    assert baseline["retain"]["n"] == 24 and baseline["retain_near"]["n"] == 12
    clamp = yaml.safe_load((repo / "data/clamp/clamp.yaml").read_text())
    assert clamp["mode"] == "refusal_clamp" and len(clamp["rows"]) == 10
    assert {row["refuse_id"] for row in clamp["rows"]} == {hub.REFUSAL_LATENT}
    assert {row["hook_action"] for row in clamp["rows"]} == {"clamp_refusal"}
    assert set(json.loads((repo / "metrics/steered.json").read_text())) >= {"alignment"}
    assert (repo / "reports/report.md").exists()


@pytest.mark.parametrize(
    ("csv", "latents", "action"),
    [
        ("paper_refusal_clamp.csv", hub.PAPER_LATENTS, "clamp_refusal"),
        ("paper_clamp_prime.csv", hub.PAPER_LATENTS[:5], "clamp"),
    ],
)
def test_the_shipped_steering_csvs_run_as_they_are(paper_run, csv, latents, action):
    repo, env, _ = paper_run
    out = run(["dvc", "exp", "run", *flags([f"clamp.csv=data/steering/{csv}"])], repo, env)
    ran = ran_stages(out)
    assert {"clamp-config", "evaluate", "report"} <= ran
    assert not ran & {"prepare-model", "prepare-data", "cache", "train-sae", "evaluate-baseline"}
    clamp = yaml.safe_load((repo / "data/clamp/clamp.yaml").read_text())
    assert [row["latent_idx"] for row in clamp["rows"]] == latents
    assert {row["hook_action"] for row in clamp["rows"]} == {action}
    assert max(latents + [hub.REFUSAL_LATENT]) < sae_cfg(repo)["d_sae"]
    steered = json.loads((repo / "metrics/steered.json").read_text())
    assert steered["forget"]["n"] == 8


def test_gemma_scope_2_on_gemma_3_at_layer_9(hub_home, tmp_path_factory):
    """The same command with the Gemma Scope 2 release on the tiny Gemma 3 (d 640), every
    stage, in bfloat16 as the README has it (the run above is float32), so the attack
    families (gradients, LoRA, soft prompts) run in bfloat16 too. The refusal latent stays
    15864, which the fixture SAE gives weights; the paper's CSVs name Gemma Scope's release,
    so clamp-config would rightly refuse them for this SAE."""
    repo = paper_repo(tmp_path_factory.mktemp("paper3"))
    skip = ("model.name", "model.dtype", "sae.", "cache.l")
    settings = [s for s in PAPER + TINY if not s.startswith(skip)]
    settings += [
        f"model.name={GEMMA3}",
        "model.dtype=bfloat16",  # the README's dtype, here on the CPU
        "sae.source=pretrained",
        "sae.release=gemma-scope-2-270m-pt-res",
        "sae.sae_id=layer_9_width_16k_l0_medium",
        "sae.layer=9",
        "cache.layers=[9]",
    ]
    out = run(["dvc", "exp", "run", *flags(settings)], repo, hub_env(hub_home))
    assert ran_stages(out) == all_stages()
    for name in METRICS:
        assert json.loads((repo / f"metrics/{name}.json").read_text()), name
    cfg = sae_cfg(repo)
    assert (cfg["d_in"], cfg["d_sae"]) == (640, 16384)
    assert cfg["metadata"]["hook_name"] == "blocks.9.hook_resid_post"
    steered = json.loads((repo / "metrics/steered.json").read_text())
    assert steered["forget"]["n"] == 8 and "alignment" in steered
