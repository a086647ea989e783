"""The Ray executor: a study's work units computed by a pool of Ray actors, committed by the driver.

Each actor (:class:`ModelWorker`) holds one model replica at a time (loaded once per actor per model, on the
model's ``device`` and in its ``dtype``) and computes units with :func:`srilab.study.executor.compute_unit`,
returning plain data (records, trace tensors, keys); only the driver writes the run directory, with
:func:`srilab.study.executor.commit`, in unit order, so ``records.jsonl`` is written as the local executor
writes it. At most ``max_in_flight`` units are submitted at once (each to the least busy actor), and at most
twice that many are computed ahead of the next one to commit.

Determinism: every worker sets torch's thread count to the driver's (the count the run started with: float
sums depend on it) and ``HF_HUB_OFFLINE``; a unit's result then depends on the unit alone. A worker that
dies is replaced and its units submitted again: nothing was committed for them, and their results are the
same, so nothing is lost or duplicated. A unit that kills :data:`MAX_ATTEMPTS` workers is one SrilabError.

Test-only fault injection (explicit, off unless set): ``SRILAB_TEST_WORKER_EXIT=K:FLAG`` in the driver's
environment makes the first worker that reaches its K-th unit and creates the file FLAG exit at once
(``os._exit``), as a crashed or preempted worker would.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from srilab.errors import SrilabError
from srilab.study.executor import Unit, commit, compute_unit, load_model
from srilab.study.interrupt import INTERRUPT
from srilab.study.store import Journal, RunDir

if TYPE_CHECKING:
    from srilab.study.config import StudyConfig

#: A unit is submitted at most this many times (each time because the worker computing it died).
MAX_ATTEMPTS = 3
FAULT_ENV = "SRILAB_TEST_WORKER_EXIT"


class ModelWorker:
    """A Ray actor: one model replica at a time, units computed on demand (see the module docstring)."""

    def __init__(self, cfg: StudyConfig, threads: int, fault: str | None = None) -> None:
        import torch

        os.environ["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE") or "1"
        torch.set_num_threads(threads)  # the driver's count: results are bit-identical only at the same count
        self.cfg, self.fault, self.count = cfg, fault, 0
        self.lm: Any = None

    def ready(self) -> int:
        return os.getpid()

    def run(self, unit: Unit) -> dict[str, Any]:
        self.count += 1
        if self.fault:
            self.maybe_die()
        spec = unit.cell.model
        if self.lm is None or self.lm.name != spec.name:
            self.lm = None  # one replica at a time: the previous model is dropped first
            import gc

            gc.collect()
            self.lm = load_model(spec, self.cfg)
        return compute_unit(unit, self.lm, self.cfg)

    def maybe_die(self) -> None:
        at, _, flag = self.fault.partition(":")
        if self.count == int(at):
            try:
                fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # another worker died already: one death per flag file
            os.close(fd)
            os._exit(1)


def connect(spec, echo: Callable[[str], None]) -> bool:
    """Join the configured cluster (``address`` or ``RAY_ADDRESS``), or reuse this process's Ray, or start a
    local instance; return whether this call initialised Ray here (and so shuts it down after the run: a
    local instance stops, a cluster is only disconnected from)."""
    import ray

    if ray.is_initialized():
        return False
    address = spec.address or os.environ.get("RAY_ADDRESS")
    started = time.perf_counter()
    if address:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
        echo(f"  ray: joined the cluster at {address} in {time.perf_counter() - started:.1f}s")
        return True
    ray.init(num_cpus=max(1, math.ceil(spec.workers * spec.num_cpus)), include_dashboard=False,
             log_to_driver=False, ignore_reinit_error=True)
    echo(f"  ray: started a local instance in {time.perf_counter() - started:.1f}s")
    return True


def run_ray(
    units: list[Unit], cfg: StudyConfig, run: RunDir, journal: Journal, bar, *, echo: Callable[[str], None]
) -> int:
    """Compute ``units`` on ``cfg.executor.workers`` Ray actors and commit them in order; return the number of
    new records."""
    import ray
    import torch
    from ray.exceptions import RayActorError

    spec = cfg.executor
    threads = torch.get_num_threads()
    started = connect(spec, echo)
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE") or "1", "OMP_NUM_THREADS": str(threads)}
    actor_class = ray.remote(ModelWorker).options(
        num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_restarts=0, max_task_retries=0,
        runtime_env={"env_vars": env},
    )
    cfg_ref = ray.put(cfg)
    fault = os.environ.get(FAULT_ENV)
    actors: list[Any] = []
    try:
        t0 = time.perf_counter()
        actors = [actor_class.remote(cfg_ref, threads, fault) for _ in range(spec.workers)]
        with contextlib.suppress(RayActorError):  # a worker that died starting is replaced by the scheduler
            ray.get([a.ready.remote() for a in actors])
        echo(f"  ray: {spec.workers} workers ({spec.num_cpus:g} CPU, {spec.num_gpus:g} GPU each, {threads} torch "
             f"threads) up in {time.perf_counter() - t0:.1f}s; at most {spec.in_flight} units in flight")
        return schedule(units, actors, lambda: actor_class.remote(cfg_ref, threads, fault), spec.in_flight,
                        lambda result: commit_one(run, journal, result, bar), run, echo)
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()


def commit_one(run: RunDir, journal: Journal, result: dict[str, Any], bar) -> int:
    bar.set_postfix_str(result["shard"].split("/")[-2][-40:])
    with INTERRUPT.batch():
        added = commit(run, journal, result)
    bar.update(added)
    return added


def schedule(
    units: list[Unit], actors: list[Any], new_actor: Callable[[], Any], in_flight: int,
    on_result: Callable[[dict[str, Any]], int], run: RunDir, echo: Callable[[str], None],
) -> int:
    """Submit units (at most ``in_flight`` at once, none more than ``2 * in_flight`` ahead of the next to
    commit), replace dead actors and resubmit their units, commit results in unit order."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    queue = deque(range(len(units)))  # positions not submitted; resubmissions go to the front
    pending: dict[Any, tuple[int, int, Any]] = {}  # ref -> (position, actor slot, actor)
    busy = [0] * len(actors)
    attempts = [0] * len(units)
    results: dict[int, dict[str, Any]] = {}
    next_commit = new = 0
    while next_commit < len(units):
        while queue and len(pending) < in_flight and queue[0] < next_commit + 2 * in_flight:
            pos = queue.popleft()
            slot = min(range(len(actors)), key=busy.__getitem__)
            attempts[pos] += 1
            pending[actors[slot].run.remote(units[pos])] = (pos, slot, actors[slot])
            busy[slot] += 1
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            pos, slot, actor = pending.pop(ref)
            busy[slot] -= 1
            unit = units[pos]
            try:
                results[pos] = ray.get(ref)
            except RayActorError as err:
                if attempts[pos] >= MAX_ATTEMPTS:
                    raise SrilabError(
                        f"{unit.cell.id} batch {unit.batch}: {MAX_ATTEMPTS} Ray workers died computing it "
                        f"(last: {str(err).splitlines()[0][:200]}); the run directory keeps every batch finished "
                        f"so far: `srilab run --resume {run.path}`"
                    ) from None
                if actors[slot] is actor:  # the first of its units to report the death: replace the worker
                    echo(f"  ray: a worker died ({unit.cell.id} batch {unit.batch}); replacing it and "
                         "computing its units again")
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
                    actors[slot] = new_actor()
                queue.appendleft(pos)
            except RayTaskError as err:  # the unit itself failed: the same error as the local executor's
                cause = getattr(err, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise SrilabError(f"{unit.cell.id} batch {unit.batch} failed in a Ray worker: {err}") from None
        queue = deque(sorted(queue))
        while next_commit in results:
            new += on_result(results.pop(next_commit))
            next_commit += 1
            INTERRUPT.check(run)
    return new
