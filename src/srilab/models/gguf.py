"""GGUF checkpoints converted once per process.

transformers reads a ``.gguf`` file three times to load it (the config, the tokenizer, the weights) and
dequantises every tensor: ~17 s for SmolLM2-135M on 2 CPU cores, against ~0.5 s to copy the converted model.
:func:`converted` keeps the first conversion of a file (keyed by its resolved path, size, modification time
and the dtype asked for) and hands every caller its own deep copy, so a judge, an attacker and a target loaded
from one file in one process (PAIR with one model, an LLM judge beside its target, a test session) pay the
conversion once, and no caller sees another's changes. Only models up to :data:`MEMO_BYTES` of parameters are
kept (the copy doubles their memory), and only the last file; :func:`clear` drops it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["MEMO_BYTES", "clear", "converted"]

#: The largest model (parameter bytes) whose conversion is kept for the process.
MEMO_BYTES = 1 << 30
_memo: dict[tuple, tuple[torch.nn.Module, object]] = {}


def clear() -> None:
    """Forget the kept conversion (its memory is freed once no copy refers to it)."""
    _memo.clear()


def converted(file: Path, torch_dtype: torch.dtype, build: Callable[[], tuple[torch.nn.Module, object]]):
    """``(module, tokenizer)`` of ``file``: ``build()`` the first time, a deep copy of that conversion after."""
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns, str(torch_dtype))
    kept = _memo.get(key)
    if kept is None:
        module, tokenizer = build()
        size = sum(p.numel() * p.element_size() for p in module.parameters())
        if size > MEMO_BYTES:
            return module, tokenizer
        _memo.clear()
        _memo[key] = kept = (module, tokenizer)
    return copy.deepcopy(kept[0]), copy.deepcopy(kept[1])
