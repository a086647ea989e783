"""Loading a native (LLaDA / Dream) checkpoint's safetensors weights into :class:`~srilab.models.native.BidirectionalLM`
by name: complete, or -- only with ``allow_partial=True`` (``--allow-partial-checkpoint``) -- incomplete, the missing
tensors randomly initialised (:func:`load_partial`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from srilab.errors import SrilabError
from srilab.models.native import FORMATS, ArchConfig, BidirectionalLM, Rotary


def weight_files(path: Path) -> list[Path]:
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    raise SrilabError(
        f"no safetensors weights in {path} (expected model.safetensors or model.safetensors.index.json); "
        "srilab never loads pickled .bin weights"
    )


def load_native(
    path: Path, fmt: str, raw_config: dict, dtype: torch.dtype = torch.float32, *, allow_partial: bool = False
) -> BidirectionalLM:
    """Build the architecture from ``raw_config`` and load the checkpoint's safetensors weights by name; a
    missing, unexpected or misshapen tensor is one SrilabError (``allow_partial``: :func:`load_partial`)."""
    make_config, rename, _ = FORMATS[fmt]
    try:
        cfg = make_config(raw_config)
    except KeyError as exc:
        raise SrilabError(f"{path / 'config.json'} is missing the {fmt} field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise SrilabError(f"{path / 'config.json'}: a {fmt} size field has the wrong type ({exc})") from None
    if allow_partial:
        return load_partial(path, cfg, rename, dtype, fmt)
    with torch.device("meta"):
        module = BidirectionalLM(cfg)
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for file in weight_files(path):
        for name, tensor in load_file(str(file)).items():
            target = rename(name)
            if target is None:
                unknown.append(name)
            else:
                state[target] = tensor.to(dtype)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    expected = {k for k in module.state_dict() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    missing = sorted(expected - set(state))
    if missing or unknown:
        detail = f"missing {missing[:4]}" if missing else f"unexpected {unknown[:4]}"
        raise SrilabError(
            f"{path} does not hold a complete {fmt} checkpoint: {detail}: fix the weight files or config.json, or "
            "pass --allow-partial-checkpoint (allow_partial=True) to load it with random tensors in their place"
        )
    for key, tensor in state.items():
        want = module.state_dict()[key].shape
        if tensor.shape != want:
            raise SrilabError(f"{path}: weight {key} has shape {tuple(tensor.shape)}, config implies {tuple(want)}")
    module.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        module.lm_head.weight = module.embed.weight
    module.rotary = Rotary(cfg.head_dim, cfg.rope_theta)  # rebuild the non-persistent buffer off the meta device
    return module.eval()




def load_partial(path: Path, cfg: ArchConfig, rename, dtype: torch.dtype, fmt: str) -> BidirectionalLM:
    """A randomly initialised module with every tensor of the right name and shape loaded, and one warning
    saying how many were missing or could not be placed."""
    module = BidirectionalLM(cfg).to(dtype)
    own = module.state_dict()
    state, skipped = {}, []
    for file in weight_files(path):
        for name, tensor in load_file(str(file)).items():
            target = rename(name)
            if target in own and own[target].shape == tensor.shape:
                state[target] = tensor.to(dtype)
            elif not (cfg.tie_embeddings and target == "lm_head.weight"):
                skipped.append(name)
    missing = sorted(set(own) - set(state) - ({"lm_head.weight"} if cfg.tie_embeddings else set()))
    if missing or skipped:
        warnings.warn(
            f"{path} is not a complete {fmt} checkpoint ({len(missing)} missing, {len(skipped)} unexpected or "
            "misshapen tensors); loaded anyway (allow_partial): the missing ones are randomly initialised",
            RuntimeWarning, stacklevel=3,
        )
    module.load_state_dict(state, strict=False)
    if cfg.tie_embeddings:
        module.lm_head.weight = module.embed.weight
    return module.eval()
