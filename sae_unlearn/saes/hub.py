"""sae-lens hub releases (`SAE.from_pretrained`): the release and id checked against sae-lens'
own directory first, and offline loading from the Hugging Face cache.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import sae_lens
from sae_lens import SAE

from sae_unlearn.errors import UserError

PATH_FIX = (
    "or save the SAE with sae-lens `sae.save_model(dir)` under inputs/saes/ and set "
    "sae.source=path with sae.path=<that dir>"
)


def _close(word: str, names: list[str], n: int = 3) -> str:
    close = difflib.get_close_matches(word, names, n=n, cutoff=0.6)
    return f"; the closest: {', '.join(close)}" if close else ""


def check_release(release: str, sae_id: str) -> None:
    """Refuse a release or SAE id that sae-lens' directory does not list, naming the close
    ones, before anything is downloaded. A hub repo id (`org/name`) not in the directory is
    left to sae-lens, which loads such repos directly."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    version = f"sae-lens {sae_lens.__version__}"
    if release not in directory:
        if "/" in release:
            return
        raise UserError(
            f"sae.release={release!r}: {version} knows no such release "
            f"({len(directory)} releases{_close(release, list(directory))}). Fix: set "
            "sae.release to a release of sae-lens' pretrained_saes.yaml (the paper's: "
            f"gemma-scope-2b-pt-res-canonical), {PATH_FIX}"
        )
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        examples = _close(sae_id, ids) or f"; e.g. {', '.join(ids[:3])}"
        raise UserError(
            f"sae.sae_id={sae_id!r}: release {release} has no such SAE ({len(ids)} ids"
            f"{examples}). Fix: set sae.sae_id to one of the release's ids"
        )


def _header_shapes(path: str) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors file's JSON header (8-byte length, then the JSON)."""
    with open(path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
    return {name: info["shape"] for name, info in header.items() if name != "__metadata__"}


@contextmanager
def _shapes_from_the_cache() -> Iterator[None]:
    """sae-lens' Gemma Scope 2 loader reads a params file's tensor shapes with HTTP range
    requests to huggingface.co (`get_safetensors_tensor_shapes`), which ignore HF_HUB_OFFLINE
    and the cache: offline, a user with the SAE cached cannot load it. sae-lens has no hook
    for this (a `converter` would have to copy its Gemma 3 loader), so for the length of one
    `from_pretrained` call only, that loader's module function reads the header of the file
    `hf_hub_download` resolves instead: from the cache offline; online it fetches the file the
    loader downloads next anyway, so nothing more is transferred."""
    from huggingface_hub import hf_hub_download
    from sae_lens.loading import pretrained_sae_loaders as loaders

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        return _header_shapes(hf_hub_download(repo_id, filename))

    original = loaders.get_safetensors_tensor_shapes
    loaders.get_safetensors_tensor_shapes = shapes
    try:
        yield
    finally:
        loaders.get_safetensors_tensor_shapes = original


def from_pretrained(release: str, sae_id: str, device: str = "cpu") -> SAE:
    """`SAE.from_pretrained`, with unknown names and an uncached SAE offline refused."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    check_release(release, sae_id)
    try:
        with _shapes_from_the_cache():
            return SAE.from_pretrained(release, sae_id, device=device)
    except LocalEntryNotFoundError as exc:
        raise UserError(
            f"sae.release={release} / sae.sae_id={sae_id}: the SAE's files are not in the "
            f"Hugging Face cache and the hub cannot be reached ({str(exc).splitlines()[0]}). "
            "Fix: run once with network access (HF_HUB_OFFLINE unset) to cache it, "
            f"{PATH_FIX}"
        ) from None
