"""Sampling: the AR and diffusion samplers, the step-wise trace, and the high-level `generate`."""

from srilab.sampling.api import (
    AnySampler,
    ARSamplerConfig,
    CanvasText,
    DiffusionSamplerConfig,
    Generation,
    Sampler,
    SamplerConfig,
    generate,
)
from srilab.sampling.diffusion import Injection
from srilab.sampling.trace import Trace, TraceConfig, Tracer

__all__ = [
    "ARSamplerConfig",
    "AnySampler",
    "CanvasText",
    "DiffusionSamplerConfig",
    "Generation",
    "Injection",
    "Sampler",
    "SamplerConfig",
    "Trace",
    "TraceConfig",
    "Tracer",
    "generate",
]
