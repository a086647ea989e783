"""Named crash points, for testing that every interruption is recoverable.

Every write a run makes passes a crash point: ``<file>:before`` and ``<file>:after`` around a journal append
(``records.jsonl``, ``judgements.jsonl``, ``dynamics.jsonl``, ``defenses.jsonl``), ``<file>:torn`` in the
middle of one (half the bytes written), ``<suffix>:before`` / ``<suffix>:after`` and ``<name>:before`` /
``<name>:after`` around an atomic file write (``.safetensors`` for trace shards; ``protocol.json``,
``summary.json``), and ``report:before`` / ``report:after`` around the report's plots and HTML.

With the environment variable ``SRILAB_CRASH_AT=<point>[:<n>]`` (e.g. ``records.jsonl:after:3``) the process
kills itself with SIGKILL the ``n``-th time (default 1) it passes that point: no cleanup, no ``finally``,
exactly as ``kill -9`` or a power cut. Without the variable a crash point costs one dictionary lookup. Tests
only; never set it in a real run.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SRILAB_CRASH_AT"
_passed: Counter[str] = Counter()


def _target() -> tuple[str, int] | None:
    """The point ``SRILAB_CRASH_AT`` names and on which pass to crash (None when unset)."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, count = spec.rpartition(":")
    return (name, int(count)) if name and count.isdigit() else (spec, 1)


def crash_point(*points: str) -> None:
    """Kill this process (SIGKILL) if ``SRILAB_CRASH_AT`` names one of ``points`` (one place can have several
    names, e.g. ``.json:before`` and ``summary.json:before``) and this is its n-th pass."""
    target = _target()
    if target is None or target[0] not in points:
        return
    _passed[target[0]] += 1
    if _passed[target[0]] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def wants(point: str) -> bool:
    """Whether the next pass of ``point`` is the one ``SRILAB_CRASH_AT`` kills at (so a caller can prepare, e.g.
    write half a line first): the ``n``-th, as :func:`crash_point` counts them; every earlier pass is a whole,
    ordinary one, as in a real run killed at that moment."""
    target = _target()
    return target is not None and target[0] == point and _passed[point] + 1 == target[1]
