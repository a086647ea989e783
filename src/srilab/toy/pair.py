"""The shipped toy pairs: where they live, how to load one (checksums verified), and its world.

Two pairs ship, by name: ``v2`` (world v2, 36 harmful tasks: the small pair the tests and quick looks use;
its diffusion model knows about half of the harmful procedures) and ``v3`` (world v3, 192 harmful tasks: the
pair whose diffusion model knows what the AR model knows, which ``examples/toy-power.yaml`` uses). Anything
else names a directory ``srilab toy train`` wrote. No name means ``v2``.
"""

from __future__ import annotations

import json
from pathlib import Path

from srilab.errors import SrilabError
from srilab.models.base import LanguageModel
from srilab.toy.train import GEN_LENGTH, verify_checksums
from srilab.toy.world import World, build_world

_ASSETS = Path(__file__).resolve().parent / "assets"
#: The pairs ``srilab toy train`` wrote and the package ships (a few MB of safetensors each), by name.
SHIPPED_PAIRS = {"v2": _ASSETS / "pair", "v3": _ASSETS / "pair-v3"}
#: The pair loaded when none is named.
SHIPPED_PAIR = SHIPPED_PAIRS["v2"]


def pair_ref(pair: str | Path) -> str:
    """How a config records ``pair``: a shipped pair's name as is, a directory as an absolute path."""
    return str(pair) if str(pair) in SHIPPED_PAIRS else str(Path(pair).resolve())


def pair_dir(path: str | Path | None = None) -> Path:
    """The directory of the pair ``path`` names: a shipped pair's name, a directory, or None (``v2``)."""
    if path is None:
        root = SHIPPED_PAIR
    else:
        root = SHIPPED_PAIRS.get(str(path), Path(path))
    if not (root / "ar").is_dir() or not (root / "diffusion").is_dir():
        shipped = path is None or str(path) in SHIPPED_PAIRS
        hint = "reinstall srilab" if shipped else "train one with `srilab toy train --out DIR`"
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
