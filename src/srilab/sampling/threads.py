"""Choosing torch's intra-op thread count on purpose, from the CPUs this process may use and how busy they are.

torch starts one intra-op thread per core it sees. Each parallel op ends in a barrier: it returns when the
slowest of its threads is done, so a single thread that a neighbour process (another experiment, someone's
test run) keeps off its core stalls every op, and more threads than *free* cores is slower -- often several
times slower -- than fewer. :func:`choose_threads` picks

1. ``SRILAB_THREADS`` when set to a positive integer (``auto``: decide as in 2, whatever ``OMP_NUM_THREADS``
   says); unset, ``OMP_NUM_THREADS`` when set (an explicit choice is kept);
2. otherwise the usable CPUs (``os.sched_getaffinity``, which honours ``taskset`` and container CPU sets)
   minus the ones other processes keep busy right now -- the runnable tasks the kernel reports in
   ``/proc/loadavg`` less this process's own runnable threads, the median of a few samples (the one-minute
   load average, which lags and counts this process too, where ``/proc`` is unavailable) -- and at least 1.

The choice is made once, when called; it does not follow load that changes later. :func:`set_threads`
applies it (``torch.set_num_threads``) and returns the count.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["busy_cpus", "choose_threads", "set_threads", "usable_cpus"]

ENV = "SRILAB_THREADS"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _runnable_others() -> int | None:
    """Runnable tasks on the machine that are not threads of this process, now (None without ``/proc``)."""
    try:
        total = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = 0
        for stat in Path("/proc/self/task").glob("*/stat"):
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
                    own += 1
            except (OSError, IndexError):
                continue
    except (OSError, IndexError, ValueError):
        return None
    return max(0, total - own)


def busy_cpus(samples: int = 5, interval: float = 0.02) -> float:
    """How many CPUs other processes keep busy: the median over ``samples`` snapshots, ``interval`` seconds
    apart, of the runnable tasks that are not this process's; the one-minute load average without ``/proc``."""
    counts = []
    for i in range(max(1, samples)):
        n = _runnable_others()
        if n is None:
            break
        counts.append(n)
        if i + 1 < samples:
            time.sleep(interval)
    if counts:
        return float(statistics.median(counts))
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def _explicit(env: Mapping[str, str]) -> int | None:
    """The thread count the environment asks for: ``SRILAB_THREADS`` (``auto``: none, decide), else
    ``OMP_NUM_THREADS``; None when neither sets one."""
    for name in (ENV, "OMP_NUM_THREADS"):
        raw = str(env.get(name, "")).strip().lower()
        if not raw:
            continue
        if raw == "auto" and name == ENV:
            return None
        if not raw.isdigit() or int(raw) < 1:
            from srilab.errors import SrilabError

            raise SrilabError(f"{name}={raw!r}: expected a positive number of threads or 'auto'")
        return int(raw)
    return None


def choose_threads(
    *, env: Mapping[str, str] | None = None, cpus: int | None = None, busy: float | None = None
) -> int:
    """The intra-op thread count to use (module docstring). ``env``: where to read ``SRILAB_THREADS`` /
    ``OMP_NUM_THREADS`` (default ``os.environ``; pass ``{}`` to decide from the machine alone); ``cpus`` /
    ``busy``: the usable and busy CPU counts, measured when not given."""
    explicit = _explicit(os.environ if env is None else env)
    if explicit is not None:
        return explicit
    cpus = usable_cpus() if cpus is None else cpus
    busy = busy_cpus() if busy is None else busy
    return max(1, min(cpus, cpus - int(round(busy))))


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to ``n`` (default :func:`choose_threads`); returns the count set."""
    import torch

    n = choose_threads() if n is None else n
    torch.set_num_threads(n)
    return n
