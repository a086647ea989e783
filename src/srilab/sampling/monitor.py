"""What a live monitor is: the extension point samplers call after every step (through the tracer).

A :class:`Monitor` gets each step's pooled activations and may answer with a :class:`StopRequest`: rows to
stop (AR: no more tokens; diffusion: no more commits) and, for diffusion, rows whose recent commits to take
back and re-decide. :class:`srilab.sri.online.GuardMonitor` is the SRI guard read online; write your own by
implementing the two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

Action = Literal["stop", "remask"]


@dataclass(frozen=True)
class StopRequest:
    """A monitor's answer after a step.

    ``stop``: bool [B], the rows to stop now. ``remask_since``: int [B] or None (diffusion only): for each row
    with a value >= 0 (and not stopped), re-mask what it committed at steps ``remask_since[b]`` .. now.
    """

    stop: np.ndarray
    remask_since: np.ndarray | None = None

    @classmethod
    def rows(cls, stop) -> StopRequest:
        """A plain stop request from a bool sequence or tensor [B]."""
        return cls(np.asarray(stop.cpu() if isinstance(stop, torch.Tensor) else stop, dtype=bool))


@runtime_checkable
class Monitor(Protocol):
    """A live check run after every generation step."""

    action: Action  # what an alarm does: "stop", or "remask" (diffusion only)

    def reset(self, batch_size: int) -> None:
        """Called once per batch, before its first step."""

    def after_step(self, step: int, phi: torch.Tensor) -> StopRequest | None:
        """``phi``: the step's pooled activations [B, D]; None: nothing to do."""
