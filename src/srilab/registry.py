"""One registry type for everything srilab looks up by name: attacks, judges, defenses, detectors, datasets.

A :class:`Registry` maps a name to an object (a function, a class or a factory) with its source (the paper
or project it comes from), a one-line summary and kind-specific tags (an attack's ``needs``, a judge's
``decides``). Entries are added with the decorator form or :meth:`Registry.add`::

    ATTACKS = Registry("attacks")

    @ATTACKS.register("prefill", source="Andriushchenko et al. 2024", needs="any")
    def prefill(request, ctx): ...

Every registry made here is listed in :data:`REGISTRIES` under its kind, which is what
``srilab list KIND`` prints. Looking up an unknown name raises one :class:`~srilab.errors.SrilabError`
naming the kind and the registered names. This module is a leaf: it imports nothing else from srilab
but the error type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from srilab.errors import SrilabError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object: ``obj`` under ``name``, with its ``source`` and a one-line ``summary``."""

    name: str
    obj: T
    source: str = ""
    summary: str = ""
    tags: Mapping[str, Any] = field(default_factory=dict)


def first_line(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring ('' without one): its first paragraph up to the first full
    stop that ends a sentence, so a summary is never cut mid-sentence at a line break."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if not doc:
        return ""
    para = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`(\"'])", para, maxsplit=1)[0]


class Registry(Generic[T]):
    """Names -> objects of one kind (``kind`` is plural, e.g. ``"attacks"``), in registration order."""

    def __init__(self, kind: str, *, singular: str | None = None, listed: bool = True) -> None:
        self.kind = kind
        self.singular = singular or kind.removesuffix("s")
        self._entries: dict[str, Entry[T]] = {}
        if listed:
            if kind in REGISTRIES:
                raise ValueError(f"a registry of {kind} exists already")
            REGISTRIES[kind] = self

    # ------------------------------------------------------------------------------------------ adding
    def add(
        self, name: str, obj: T, *, source: str = "", summary: str | None = None, replace: bool = False, **tags: Any
    ) -> Entry[T]:
        """Register ``obj`` under ``name``; a name taken already is an error unless ``replace``."""
        if not isinstance(name, str) or not name.strip():
            raise SrilabError(f"a {self.singular} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace:
            raise SrilabError(f"{self.singular} {name!r} is registered already")
        entry = Entry(name, obj, source, first_line(obj) if summary is None else summary, MappingProxyType(tags))
        self._entries[name] = entry
        return entry

    def register(
        self, name: str | None = None, *, source: str = "", summary: str | None = None, **tags: Any
    ) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; ``name`` defaults to the object's ``__name__``."""

        def deco(obj: T) -> T:
            self.add(name or obj.__name__, obj, source=source, summary=summary, **tags)
            return obj

        return deco

    def remove(self, name: str) -> Entry[T]:
        return self._entries.pop(self.entry(name).name)

    # ------------------------------------------------------------------------------------------ reading
    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise SrilabError(
                f"unknown {self.singular} {name!r}: choose one of {', '.join(self.names()) or '(none registered)'}"
            ) from None

    def get(self, name: str) -> T:
        """The object registered under ``name`` (an unknown name is one error listing the known ones)."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def snapshot(self) -> dict[str, Entry[T]]:
        """A copy of the entries, to :meth:`restore` later (tests that register temporary entries)."""
        return dict(self._entries)

    def restore(self, snapshot: Mapping[str, Entry[T]]) -> None:
        self._entries = dict(snapshot)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable name is not registered
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


#: Every listed registry by kind: ``attacks``, ``judges``, ``defenses``, ``detectors``, ``datasets``.
REGISTRIES: dict[str, Registry[Any]] = {}
