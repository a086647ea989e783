"""SRI centres: per step, the mean activation of harmless prompts the model answered and of harmful
prompts it refused (DESIGN.md, "Centres").

Centres are only meaningful for the model, sampler settings, layer and pooling that produced them, and
for the data they were computed on. That is their :class:`CentreKey`; saving writes it beside the tensors
(``centres.safetensors`` + ``centres.json``), and loading with an ``expected`` key that differs is an error,
never a silent reuse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from srilab.errors import SrilabError


def data_hash(prompts: Iterable[str]) -> str:
    """A stable short hash of the prompts the centres were computed on."""
    h = hashlib.sha256()
    if isinstance(prompts, str | bytes) or not isinstance(prompts, Iterable):
        raise SrilabError(f"data_hash needs a list of prompts (str), got {type(prompts).__name__}")
    for p in prompts:
        if not isinstance(p, str):
            raise SrilabError(f"data_hash needs prompts as str, got {type(p).__name__}")
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class CentreKey:
    model: str  # model name and weight fingerprint
    sampler: dict  # SamplerConfig.key()
    layer: str
    pooling: str
    data: str  # data_hash of the prompts

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    def diff(self, other: CentreKey) -> list[str]:
        a, b = self.as_dict(), other.as_dict()
        return [f"{k}: {a[k]} != {b[k]}" for k in a if a[k] != b[k]]


@dataclass
class Centres:
    harmless: np.ndarray  # [S, D]
    harmful: np.ndarray  # [S, D]
    key: CentreKey
    counts: dict  # how many generations each centre averages

    @property
    def num_steps(self) -> int:
        return int(self.harmless.shape[0])

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file(
            {"harmless": torch.from_numpy(np.ascontiguousarray(self.harmless, dtype=np.float32)),
             "harmful": torch.from_numpy(np.ascontiguousarray(self.harmful, dtype=np.float32))},
            str(d / "centres.safetensors"),
        )
        (d / "centres.json").write_text(json.dumps({"key": self.key.as_dict(), "counts": self.counts}, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path, expected: CentreKey | None = None) -> Centres:
        d = Path(directory)
        meta_file, tensor_file = d / "centres.json", d / "centres.safetensors"
        if not meta_file.is_file() or not tensor_file.is_file():
            raise SrilabError(f"{d} holds no saved centres (centres.json and centres.safetensors)")
        try:
            meta = json.loads(meta_file.read_text())
            key = CentreKey(**meta["key"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SrilabError(f"{meta_file} is malformed ({exc}); recompute the centres") from None
        if expected is not None and (diff := expected.diff(key)):
            raise SrilabError(f"centres in {d} were computed for other settings ({'; '.join(diff)}); recompute them")
        try:
            t = load_file(str(tensor_file))
            return cls(t["harmless"].numpy(), t["harmful"].numpy(), key, meta.get("counts", {}))
        except Exception as exc:  # safetensors raises its own error types; a missing tensor is a KeyError
            raise SrilabError(f"cannot read {tensor_file} ({type(exc).__name__}); recompute the centres") from None


def compute_centres(
    activations,
    harmful: Sequence[bool],
    refused: Sequence[bool],
    key: CentreKey,
    min_count: int = 1,
) -> Centres:
    """Centres from step activations [N, S, D] and per-generation labels.

    The harmless centre averages generations of harmless prompts that were *not* refused; the harmful centre
    averages harmful prompts that *were* refused (the refusal label comes from a judge).
    """
    from srilab.sri.signal import tensor_to_numpy

    if activations is None or isinstance(activations, str | bytes) or not isinstance(key, CentreKey):
        raise SrilabError("compute_centres needs activations [N, steps, dim] (an array or tensor) and a CentreKey")
    acts = np.asarray(tensor_to_numpy(activations)).astype(np.float64)  # a bf16 tensor on a GPU too
    harmful = np.asarray(harmful, dtype=bool)
    refused = np.asarray(refused, dtype=bool)
    if acts.ndim != 3 or not (len(harmful) == len(refused) == acts.shape[0]):
        raise SrilabError(
            f"activations {acts.shape} and labels ({len(harmful)}, {len(refused)}) must agree: "
            "[N, steps, dim] and N labels each"
        )
    if not np.isfinite(acts).all():
        raise SrilabError("activations contain NaN or inf: cannot compute centres")
    sel_harmless = ~harmful & ~refused
    sel_harmful = harmful & refused
    for name, sel in (("harmless prompts answered", sel_harmless), ("harmful prompts refused", sel_harmful)):
        if sel.sum() < min_count:
            raise SrilabError(
                f"only {int(sel.sum())} generations of {name} (need {min_count}): add prompts or check the judge"
            )
    return Centres(
        harmless=acts[sel_harmless].mean(axis=0),
        harmful=acts[sel_harmful].mean(axis=0),
        key=key,
        counts={"harmless": int(sel_harmless.sum()), "harmful": int(sel_harmful.sum())},
    )
