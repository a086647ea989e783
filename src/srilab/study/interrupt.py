"""Ctrl-C during a run: finish the current generation batch, then stop with exit code 130 and say how to
resume (a second Ctrl-C stops at once; the run directory stays resumable either way)."""

from __future__ import annotations

import contextlib

from srilab.errors import SrilabError
from srilab.study.store import RunDir


class Interrupted(SrilabError):
    """Ctrl-C: the run stopped cleanly and can be resumed (exit code 130)."""

    exit_code = 130


class InterruptGuard:
    """SIGINT during a run: inside a generation batch, finish the batch first; elsewhere stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self.in_batch = False

    def handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.in_batch and not self.requested:
            self.requested = True  # a second Ctrl-C stops at once
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def batch(self):
        self.in_batch = True
        try:
            yield
        finally:
            self.in_batch = False

    def check(self, run: RunDir) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        import signal
        import threading

        self.requested = self.in_batch = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


#: The run's one guard (signal handlers are process-wide).
INTERRUPT = InterruptGuard()
