"""A Hugging Face cache of the paper's repos, in their real layout, built offline.

Two caches, as a user has them after one online run:
- the hub cache (`$HF_HOME/hub`): `{models,datasets}--{org}--{name}/blobs/<sha256>`,
  `snapshots/<commit>/<path>` (a relative symlink to the blob) and `refs/main` (the commit), which
  `hf_hub_download` reads when `HF_HUB_OFFLINE=1` (transformers and sae-lens go through it);
- the datasets cache (`$HF_HOME/datasets`): `{org}___{name}/{config}/0.0.0/<commit>/` with Arrow
  files and `dataset_info.json`. Offline, `datasets.load_dataset("cais/wmdp", ...)` reads only
  this one (its `CachedDatasetModuleFactory`), never the hub cache's parquet files, so both are
  built: the parquet files in the hub layout, and from them, by `datasets`' own parquet builder
  configured as its hub loader configures it, the prepared cache.

The arrays are full size and mostly zero: only `LIVE` latents have encoder columns and decoder
rows, so the files compress (Gemma Scope's npz) and the clamp's latents fire on some tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tests.tiny import _tiny_config, tiny_tokenizer

# The paper's steering CSVs' latents and refusal latent (data/steering/paper_refusal_clamp.csv).
PAPER_LATENTS = [11766, 9723, 4788, 1709, 9186, 3058, 13381, 14050, 11078, 16246]
REFUSAL_LATENT = 15864
D_SAE = 16384


def live_latents(seed: int = 0, n_other: int = 53) -> list[int]:
    """The latents given weights: the paper's, its refusal latent and `n_other` random ones."""
    rng = np.random.default_rng(seed)
    others = [int(i) for i in rng.choice(D_SAE, n_other + 20, replace=False)]
    known = set(PAPER_LATENTS) | {REFUSAL_LATENT}
    return sorted(known | set([i for i in others if i not in known][:n_other]))


def commit_of(repo_id: str) -> str:
    """A fixed 40-hex commit per repo (the cache only needs it consistent)."""
    return hashlib.sha1(f"commit of {repo_id}".encode()).hexdigest()


def repo_folder(hub_cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    return hub_cache / f"{repo_type}s--{repo_id.replace('/', '--')}"


def add_files(
    hub_cache: Path, repo_id: str, files: dict[str, Path], repo_type: str = "model"
) -> Path:
    """Put `files` (repo path -> local file) into the hub cache; returns the snapshot dir."""
    folder = repo_folder(hub_cache, repo_id, repo_type)
    commit = commit_of(repo_id)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs/main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    for repo_path, source in files.items():
        data = Path(source).read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / repo_path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def sae_arrays(d_in: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gemma Scope's five arrays (float32), zero but for the live latents."""
    rng = np.random.default_rng(seed)
    live = live_latents(seed)
    w_enc = np.zeros((d_in, D_SAE), np.float32)
    w_dec = np.zeros((D_SAE, d_in), np.float32)
    # Encoder columns of unit norm: the pre-activation is the residual's projection, so a
    # latent fires where the residual points its way (the tiny models' residual norms are ~50).
    cols = rng.standard_normal((d_in, len(live))).astype(np.float32)
    w_enc[:, live] = cols / np.linalg.norm(cols, axis=0)
    rows = rng.standard_normal((len(live), d_in)).astype(np.float32)
    w_dec[live] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    threshold = np.zeros(D_SAE, np.float32)
    threshold[live] = rng.uniform(0.5, 2.0, len(live)).astype(np.float32)
    b_enc = np.zeros(D_SAE, np.float32)
    b_dec = (0.01 * rng.standard_normal(d_in)).astype(np.float32)
    return {"W_enc": w_enc, "W_dec": w_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold}


def add_gemma_scope(hub_cache: Path, tmp: Path) -> dict[str, np.ndarray]:
    """google/gemma-scope-2b-pt-res: layer 7's 16k SAE, which `canonical` maps to
    (sae-lens' pretrained_saes.yaml: layer_7/width_16k/canonical -> average_l0_69)."""
    arrays = sae_arrays(2304)
    path = tmp / "params.npz"
    np.savez_compressed(path, **arrays)
    add_files(
        hub_cache,
        "google/gemma-scope-2b-pt-res",
        {"layer_7/width_16k/average_l0_69/params.npz": path},
    )
    return arrays


def add_gemma_scope_2(hub_cache: Path, tmp: Path) -> dict[str, np.ndarray]:
    """google/gemma-scope-2-270m-pt: layer 9's 16k residual SAE, safetensors with Gemma Scope
    2's lower-case keys, and the folder's config.json that sae-lens reads."""
    from safetensors.numpy import save_file

    arrays = sae_arrays(640, seed=1)
    params = tmp / "params.safetensors"
    save_file({k.lower() if k.startswith("W_") else k: v for k, v in arrays.items()}, params)
    config = tmp / "config.json"
    config.write_text(
        json.dumps(
            {
                "architecture": "jump_relu",
                "model_name": "gemma-v3-270m-pt",
                "hf_hook_point_in": "model.layers.9.output",
                "width": D_SAE,
                "l0": 60,
            }
        )
    )
    folder = "resid_post/layer_9_width_16k_l0_medium"
    add_files(
        hub_cache,
        "google/gemma-scope-2-270m-pt",
        {f"{folder}/params.safetensors": params, f"{folder}/config.json": config},
    )
    return arrays


def add_tiny_model(hub_cache: Path, tmp: Path, repo_id: str, arch: str, hidden: int, layers: int):
    """A tiny random Gemma 2 / Gemma 3 of the real model's hidden size, with the tests' tiny
    tokenizer, saved as safetensors into the hub cache under `repo_id`."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = tiny_tokenizer()
    settings = {**_tiny_config(len(tokenizer), hidden, layers), "intermediate_size": 64}
    torch.manual_seed(0)
    if arch == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**settings))
    else:
        model = Gemma3ForCausalLM(Gemma3TextConfig(**settings))
    out = tmp / repo_id.replace("/", "--")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    add_files(hub_cache, repo_id, {p.name: p for p in out.iterdir() if p.is_file()})
    return out


# The hub datasets: repo -> config -> split -> rows. Each repo's README declares its configs
# as the real ones do (`configs:` with `data_files` per split).
def _question(subject: str, i: int) -> dict:
    return {
        "question": f"Which {subject.replace('_', ' ')} answer is number {i}?",
        "choices": [f"{subject} option {j} of {i}" for j in range(4)],
        "answer": i % 4,
    }


def dataset_rows(mmlu_subjects: list[str]) -> dict[str, dict[str, dict[str, list[dict]]]]:
    wmdp = {"wmdp-bio": {"test": [_question("virology", i) for i in range(8)]}}
    mmlu = {
        s: {"test": [{**_question(s, i), "subject": s} for i in range(6)]} for s in mmlu_subjects
    }
    lines = []
    for n in range(4):
        lines += ["", f" = Article {n} = ", "", f" The capital of place {n} is a city . "]
        lines += [" = = History = = ", f" It was founded in year {1000 + n} . ", ""]
    wikitext = {"wikitext-2-raw-v1": {"train": [{"text": line} for line in lines]}}
    return {"cais/wmdp": wmdp, "cais/mmlu": mmlu, "Salesforce/wikitext": wikitext}


def add_dataset(hub_cache: Path, datasets_cache: Path, tmp: Path, repo_id: str, configs: dict):
    """One dataset repo: parquet files + README in the hub cache, then the prepared Arrow
    cache of each config, made by `datasets`' parquet builder as its hub loader makes it."""
    from datasets.load import LocalDatasetModuleFactory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    staging = tmp / repo_id.replace("/", "--")
    files: dict[str, Path] = {}
    card = ["---", "configs:"]
    for config, splits in configs.items():
        card.append(f"- config_name: {config}\n  data_files:")
        for split, rows in splits.items():
            name = f"{config}/{split}-00000-of-00001.parquet"
            (staging / config).mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(staging / name)
            files[name] = staging / name
            card.append(f"  - split: {split}\n    path: {name}")
    card.append("---")
    (staging / "README.md").write_text("\n".join(card) + "\n")
    files["README.md"] = staging / "README.md"
    snapshot = add_files(hub_cache, repo_id, files, repo_type="dataset")
    # Built from the snapshot's local files (a builder given `repo_id` wants hf:// URLs), into
    # a staging cache, then moved to the `{org}___{name}` folder a hub run writes.
    module = LocalDatasetModuleFactory(str(snapshot)).get_module()
    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    module.builder_kwargs["dataset_name"] = name
    module.hash = commit_of(repo_id)
    builder_cls = get_dataset_builder_class(module, dataset_name=name)
    built = tmp / f"datasets-{name}"
    for config in configs:
        builder = builder_cls(
            cache_dir=str(built), config_name=config, hash=module.hash, **module.builder_kwargs
        )
        builder.download_and_prepare()
    target = datasets_cache / repo_id.replace("/", "___")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(built / name, target)
