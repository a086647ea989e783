"""The SRI guard's variants by name: a representation (:mod:`srilab.sri.representation`) x a detector
(:mod:`srilab.sri.detectors`) x a scaling, the paper's guard first. A study config names one (``sri.variant``,
checked by :func:`check_variant`); the analysis fits, compares and chooses among them
(:mod:`srilab.analysis.guard_variants`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from srilab.sri.guard import SRIGuard


@dataclass(frozen=True)
class Variant:
    """One guard configuration: representation, detector, scaling (and detector options)."""

    representation: str
    detector: str
    scaling: str = "robust"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.representation}+{self.detector}+{self.scaling}"

    def guard(self, quantile: float, seed: int) -> SRIGuard:
        return SRIGuard(
            self.detector, quantile=quantile, seed=seed, options=dict(self.options),
            representation=self.representation, scaling=self.scaling,
        )


PAPER = Variant("sri", "autoencoder", "none")


def default_variants(paper_detector: str = "autoencoder") -> list[Variant]:
    """The paper's guard first (with the study's detector), then every robust candidate."""
    out = [Variant("sri", paper_detector, "none")]
    for rep in ("sri", "log_ratio", "distances"):
        for det in ("autoencoder", "mahalanobis", "knn"):
            out.append(Variant(rep, det, "robust"))
    return out


def check_variant(name: str) -> str:
    """A valid ``sri.variant``: ``auto`` (:func:`srilab.analysis.guard_variants.select_variant` decides on
    calibration data), ``paper``, or the name of one of :func:`default_variants`
    (``representation+detector+scaling``)."""
    names = [v.name for v in default_variants()]
    if name in ("auto", "paper", *names):
        return name
    raise ValueError(f"unknown guard variant {name!r}: use auto, paper or one of {', '.join(names)}")
