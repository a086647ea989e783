"""A native (LLaDA / Dream) checkpoint loaded although it is incomplete: only with ``allow_partial=True``
(``--allow-partial-checkpoint``); :func:`srilab.models.native.load_native` refuses it otherwise."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from srilab.models.native import ArchConfig, BidirectionalLM, weight_files


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
