"""Sampling: the AR and diffusion samplers, the step-wise trace, and the high-level `generate`."""

from srilab.sampling.api import CanvasText, Generation, SamplerConfig, generate
from srilab.sampling.diffusion import Injection
from srilab.sampling.trace import Trace, TraceConfig, Tracer

__all__ = [
    "CanvasText",
    "Generation",
    "Injection",
    "SamplerConfig",
    "Trace",
    "TraceConfig",
    "Tracer",
    "generate",
]
