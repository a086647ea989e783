"""The parts of a study config that stand on their own: the strict base every spec shares (unknown keys, non-finite
or non-float32 numbers, invalid Unicode and deep nesting refused), the judge, SRI, protocol, defense and analysis
blocks, the ``executor:`` block (where generations run; :mod:`srilab.study.executor` runs them), and the checks of
names, seeds and devices. :mod:`srilab.study.config` builds the study from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import srilab.toy.oracle  # noqa: F401  (registers the oracle judge)
from srilab.checks import MAX_SEED as MAX_SEED  # re-exported: its home is srilab.checks
from srilab.checks import CheckedModel
from srilab.checks import check_seed as _check_seed
from srilab.defenses import DEFENSES
from srilab.defenses.base import defense_options
from srilab.errors import SrilabError
from srilab.judges import JUDGES
from srilab.sri.detectors import DETECTORS
from srilab.sri.variants import check_variant


class StrictSpec(CheckedModel):
    """The base of every spec: unknown keys refused, frozen, every value plain data (see
    :func:`srilab.checks.data_problem`); a direct construction with a bad value is one SrilabError."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class JudgeSpec(StrictSpec):
    """A judge from :data:`srilab.judges.JUDGES` (``srilab list judges``): ``refusal`` (keyword), ``oracle``
    (toy world), ``harmbench`` or ``llama_guard`` (classifiers), or one a plugin registered."""

    name: str = Field(min_length=1)
    path: str | None = None  # classifier checkpoint (folder, .gguf or hub id)
    label: str | None = None  # how it is named in the results (default: name)
    batch_size: int = Field(8, gt=0)
    dtype: str | None = None
    device: str = "cpu"
    trust_remote_code: bool = False

    @property
    def key(self) -> str:
        return self.label or self.name

    @property
    def decides(self) -> str:
        """``refused`` or ``harmful``: what the registered judge decides."""
        return JUDGES.entry(self.name).tags["decides"]

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in JUDGES:
            raise ValueError(f"unknown judge {v!r}: choose one of {', '.join(JUDGES.names())}")
        return v


class SRISpec(StrictSpec):
    """SRI centres, signal and guard, computed from the traces by ``srilab report``."""

    enabled: bool = True
    layer: str | int = "last"
    pooling: Literal["generated", "response"] = "generated"
    harmful: str | None = None  # harmful dataset whose refused direct answers make the harmful centre
    detector: str = "autoencoder"
    variant: str = "auto"  # auto | paper | representation+detector+scaling: srilab.sri.variants
    quantile: float = Field(0.99, gt=0.0, lt=1.0)  # the guard's threshold: this quantile of benign scores ...
    threshold: Literal["topic_heldout", "calibration"] = "topic_heldout"  # ... out-of-topic, or of calibration rows
    online_every: int = Field(4, gt=0)  # the online guard checks every this many steps

    @field_validator("detector", "variant")
    @classmethod
    def _names(cls, v: str, info) -> str:
        if info.field_name == "variant":
            return check_variant(v)
        if v not in DETECTORS:
            raise ValueError(f"unknown guard detector {v!r}: choose one of {', '.join(DETECTORS.names())}")
        return v


class ProtocolSpec(StrictSpec):
    """How items get their roles (:mod:`srilab.study.protocol`): disjoint, seeded, recorded in the run.

    Benign topic groups: a share ``unseen_groups`` of them (at least one when there are two or more) is held
    out whole as ``eval_unseen_topics``; the items of the other groups are split by a seeded hash into
    ``centre`` / ``guard_fit`` / ``calibration`` / ``eval_seen_topics`` in the given proportions. Harmful: a
    share ``harmful_centre`` of the ``sri.harmful`` dataset builds the harmful centre (asked directly, never
    scored); the rest is attacked."""

    seed: int | None = None  # default: the study's seed
    unseen_groups: float = Field(0.25, ge=0.0, lt=1.0)
    centre: float = Field(0.2, ge=0.0)
    guard_fit: float = Field(0.3, gt=0.0)
    calibration: float = Field(0.3, gt=0.0)
    eval_seen_topics: float = Field(0.2, ge=0.0)
    harmful_centre: float = Field(0.25, gt=0.0, lt=1.0)
    fpr: float = Field(0.05, gt=0.0, lt=1.0)  # the matched benign FPR every detector is calibrated to

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int | None) -> int | None:
        return v if v is None else check_seed(v)


class DefenseSpec(StrictSpec):
    """A baseline defense from :data:`srilab.defenses.DEFENSES`, scored on the run's records after judging."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, gt=0)  # per arm and role at most this many (attacked: this many successes + others)

    @model_validator(mode="after")
    def _known_options(self) -> DefenseSpec:
        if self.name in DEFENSES:  # an unknown name: StudyConfig names it with the list of defenses
            allowed = defense_options(self.name)
            unknown = [] if allowed is None else sorted(set(self.options) - set(allowed))
            if unknown:
                raise ValueError(f"unknown {self.name} option(s) {', '.join(unknown)}: allowed are "
                                 f"{', '.join(allowed) or 'none'}")
        return self


class AnalysisSpec(StrictSpec):
    """Which analysis stages the report runs besides rates and the SRI guard."""

    dynamics_every: int = Field(8, ge=0)  # judge intermediate canvases every this many steps (0: off)
    text_baseline: bool = True  # the benign-only TF-IDF detector on the answer text
    # every guard variant's figures beside the chosen guard's (srilab.analysis.guard_variants): costly, off by default
    guard_variants: bool = False
    partial_refusal: Literal["refused", "complied", "separate"] = "refused"  # how a partial refusal counts
    # the knowledge ceiling (srilab.study.knowledge): every arm asked each attacked request as plain text
    knowledge: bool = True


DTYPES = ("float32", "float16", "bfloat16")


def check_seed(v: int) -> int:
    return _check_seed(v)


def check_device(v: str) -> str:
    """``cpu``, ``cuda[:N]`` or ``mps``, and only a device that this machine has."""
    from srilab.io import device_problem

    if problem := device_problem(v):
        raise ValueError(problem)
    return v


def check_name(v: str) -> str:
    bad = set(v) & set('/\\:*?"<>|\n\t ')
    if bad or v.startswith("."):
        raise ValueError(f"{v!r} is used in file names: use letters, digits, '-', '_' or '.' (no spaces or slashes)")
    return v


EXECUTORS = ("local", "ray")


class ExecutorSpec(BaseModel):
    """Where generations run (``executor:`` in a study config; ``--executor`` / ``--workers`` override it).

    ``ray``: ``workers`` actors, each with ``num_cpus`` CPUs and ``num_gpus`` GPUs and one model replica, at
    most ``max_in_flight`` units submitted at once (default: twice the workers); ``address`` (or
    ``RAY_ADDRESS``) joins a running cluster, otherwise a local Ray instance is started for the run. ``local``
    ignores the other fields. Not part of the config a resumed run must match.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    address: str | None = None
    max_in_flight: int | None = Field(None, ge=1)

    @property
    def in_flight(self) -> int:
        return self.max_in_flight or 2 * self.workers


def executor_spec(spec: ExecutorSpec, kind: str | None = None, workers: int | None = None) -> ExecutorSpec:
    """The config's executor with the command line's overrides, checked (Ray importable when asked for)."""
    if kind is not None and kind not in EXECUTORS:
        raise SrilabError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SrilabError(f"--workers must be a whole number of at least 1, got {workers!r}")
    update = {k: v for k, v in (("kind", kind), ("workers", workers)) if v is not None}
    spec = spec.model_copy(update=update) if update else spec
    if spec.kind == "ray":
        try:
            import ray
        except ImportError:
            raise SrilabError(
                "the ray executor needs Ray, which is not installed: pip install 'srilab[ray]' "
                "(or run with --executor local)"
            ) from None
        major, minor = (int(p) for p in ray.__version__.split(".")[:2])
        if (major, minor) < (2, 9):
            raise SrilabError(f"the ray executor needs ray>=2.9, found {ray.__version__}: pip install 'srilab[ray]'")
    return spec
