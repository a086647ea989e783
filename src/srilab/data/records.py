"""The typed record every loader returns, one per data row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Record:
    """One request of a benchmark.

    Attributes:
        id: a stable id: the dataset's own id where it has one (HarmBench's ``BehaviorID``, XSTest's
            ``id``, JailbreakBench's ``Index``), else the dataset name and the 0-based row number.
        prompt: the request text given to the model.
        dataset: the dataset name (``advbench``, ``harmbench``, ...; the file stem for :func:`load_prompts`).
        category: the dataset's category of the request, if any (HarmBench's semantic category, XSTest's type).
        target: the affirmative target string where the dataset has one (AdvBench's and JailbreakBench's
            ``target``, e.g. ``"Sure, here is a script that ..."``).
        label: ``"harmful"``, ``"benign"``, ``"safe"`` or ``"unsafe"``, as the dataset defines it.
        meta: everything else the row holds (the source ``line``, other columns); not part of the hash.
    """

    id: str
    prompt: str
    dataset: str
    category: str | None = None
    target: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False)
