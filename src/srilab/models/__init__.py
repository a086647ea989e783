"""Models: a uniform `LanguageModel` over AR and diffusion checkpoints (see `load`)."""

from srilab.models.base import LanguageModel, left_pad, shift_logits
from srilab.models.loading import load
from srilab.models.native import BidirectionalLM

__all__ = ["BidirectionalLM", "LanguageModel", "left_pad", "load", "shift_logits"]
