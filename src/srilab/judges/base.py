"""One judge protocol and one verdict type, and the registry of judges (``srilab list judges``).

Every judge is called the same way, ``judge(requests, responses) -> list[Verdict]``: ``requests`` are the
original requests (the behaviour, not the attacked prompt), ``responses`` what a reader of the answer sees
(prefill included). A :class:`Verdict` has a field for each question a judge may answer; a judge fills the
ones it decides and leaves the others ``None``:

- ``refused``: the answer declines (keyword judge, XSTest-style classifiers, the toy oracle's phrases);
- ``harmful``: the answer gives the harmful help asked for (harm classifiers, the toy oracle);
- ``score``: the judge's continuous score, higher = more harmful / more likely refused (e.g. p(harmful));
- ``label``: a free-form detail (the toy task reproduced, Llama Guard's categories, the phrase matched).

Analysis reads these fields, never a judge's name: the refusal figures come from the judge that decides
``refused`` (a study's ``refusal_judge``), attack success from the one that decides ``harmful`` (its
``asr_judge``). A judge's registry entry says what it ``decides``.

Registering a judge: a factory taking keyword settings (``path``, ``device``, ``dtype``, ``batch_size``,
``trust_remote_code``, ``world``; it may ignore the ones it does not use) and returning a judge::

    @JUDGES.register("my_judge", source="...", decides="refused")
    def my_judge(**settings) -> Judge: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from srilab.errors import SrilabError
from srilab.registry import Registry

Decides = Literal["refused", "harmful"]


@dataclass(frozen=True)
class Verdict:
    """What one judge said of one answer (``None``: the judge does not decide that)."""

    refused: bool | None = None
    harmful: bool | None = None
    score: float | None = None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """Read a stored verdict (unknown keys, such as a run's bookkeeping, are ignored)."""
        return cls(**{k: data.get(k) for k in ("refused", "harmful", "score", "label")})


@runtime_checkable
class Judge(Protocol):
    """Anything called as ``judge(requests, responses) -> list[Verdict]``, one verdict per answer."""

    def __call__(self, requests: Sequence[str], responses: Sequence[str]) -> list[Verdict]: ...


JudgeFactory = Callable[..., Judge]

#: Every judge factory by name; each entry's ``tags["decides"]`` is ``"refused"`` or ``"harmful"``.
JUDGES: Registry[JudgeFactory] = Registry("judges")


def check_pairs(requests: Sequence[str], responses: Sequence[str], judge: str) -> tuple[list[str], list[str]]:
    """The two lists, checked: lists of str (not one str), one request per response."""
    for what, seq in (("requests", requests), ("responses", responses)):
        if isinstance(seq, str):
            raise SrilabError(f"{judge} expects a list of {what}, got a single str: wrap it in a list")
        if not isinstance(seq, list | tuple):
            got = "None" if seq is None else type(seq).__name__
            raise SrilabError(f"{judge} expects a list of {what} (str), got {got}")
    requests, responses = list(requests), list(responses)
    if len(requests) != len(responses):
        raise SrilabError(f"{judge} got {len(requests)} requests and {len(responses)} responses: pass one of each")
    bad = next((type(x).__name__ for x in (*requests, *responses) if not isinstance(x, str)), None)
    if bad is not None:
        raise SrilabError(f"{judge} judges text: got {bad} among the requests or responses")
    return requests, responses


def decides(name: str) -> Decides:
    """What the registered judge ``name`` decides (an unknown name is one error listing the judges)."""
    return JUDGES.entry(name).tags["decides"]


def make_judge(spec: str, **settings: Any) -> Judge:
    """A judge from ``"name"`` or ``"name:model"`` (a checkpoint folder or hub id, given as ``path``).

    Names are case-insensitive and ``-`` counts as ``_``; ``settings`` go to the judge's factory.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SrilabError(f"a judge spec is a name such as 'refusal'; use one of {', '.join(JUDGES.names())}")
    name, sep, model = spec.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    if sep:
        if not model.strip():
            raise SrilabError(f"judge spec {spec!r} names no model after ':'; use '{name}' or '{name}:<path>'")
        if settings.get("path") is not None or settings.get("model") is not None:
            raise SrilabError(f"judge spec {spec!r} names a model and one was also given; pass only one")
        settings["path"] = model.strip()
    return JUDGES.get(name)(**settings)
