"""The shipped toy pair: where it lives, how to load it (checksums verified), and its world."""

from __future__ import annotations

import json
from pathlib import Path

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.toy.train import GEN_LENGTH, verify_checksums
from srilab.toy.world import World, build_world

#: The pair ``srilab toy train`` wrote and the package ships (a few MB of safetensors).
SHIPPED_PAIR = Path(__file__).resolve().parent / "assets" / "pair"


def pair_dir(path: str | Path | None = None) -> Path:
    root = Path(path) if path is not None else SHIPPED_PAIR
    if not (root / "ar").is_dir() or not (root / "diffusion").is_dir():
        hint = "reinstall srilab" if path is None else "train one with `srilab toy train --out DIR`"
        raise SrilabError(f"no toy pair (ar/ and diffusion/) in {root}: {hint}")
    return root


def load_pair(
    path: str | Path | None = None, *, verify: bool = True, device: str = "cpu"
) -> tuple[LanguageModel, LanguageModel]:
    """The (AR, diffusion) toy models from ``path`` (default: the shipped pair), via ``srilab.models.load``."""
    from srilab.models import load

    root = pair_dir(path)
    if verify:
        verify_checksums(root)
    ar = load(root / "ar", device=device)
    dlm = load(root / "diffusion", device=device)
    if ar.kind != "ar" or dlm.kind != "diffusion":
        raise SrilabError(f"the toy pair in {root} has kinds {ar.kind}/{dlm.kind}: expected ar/diffusion")
    ar.name, dlm.name = "toy-ar", "toy-diffusion"
    return ar, dlm


def training_record(path: str | Path | None = None) -> dict:
    record = pair_dir(path) / "training.json"
    if not record.is_file():
        raise SrilabError(f"{record} is missing: the toy pair was not written by `srilab toy train`")
    return json.loads(record.read_text())


def pair_world(path: str | Path | None = None) -> World:
    """The world the pair was trained on (its seed and version are in ``training.json``; a record without a
    version is a v2 pair)."""
    config = training_record(path)["config"]
    return build_world(int(config.get("world_seed", 0)), int(config.get("world_version", 2)))


def pair_gen_length(path: str | Path | None = None) -> int:
    return int(training_record(path)["config"].get("gen_length", GEN_LENGTH))
