"""Sampler configs, one class per family: :class:`ARSamplerConfig` and :class:`DiffusionSamplerConfig`
(LLaDA's block schedule or Dream's, with the fast-sampling options), told apart by ``kind``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from srilab.checks import CheckedModel, check_seed
from srilab.errors import SrilabError
from srilab.sampling.diffusion_rules import remasking_rule

if TYPE_CHECKING:
    from srilab.models.base import LanguageModel


#: A temperature is 0 (greedy) or in this range: below it ``logits / temperature`` leaves float16's range, above it
#: sampling is uniform noise (and LLaDA's Gumbel noise ``(-log u) ** temperature`` underflows; see below).
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0
#: Classifier-free guidance scales above this make ``(cfg + 1) * (logits - unconditional)`` meaningless.
MAX_CFG_SCALE = 100.0
#: More denoising steps than this are a typo (LLaDA and Dream use at most a few thousand).
MAX_STEPS = 65536
# LLaDA's Gumbel noise is (-log u) ** temperature in float64 with u in [2**-53, 1 - 2**-53]: both ends must stay
# normal floats, or exp(logits) / noise divides by 0 (inf) and sampling is the first index of the ties.
_GUMBEL_ENDS = (-math.log1p(-(2.0**-53)), -math.log(2.0**-53))


def check_temperature(v: float, what: str = "temperature") -> float:
    if v != 0 and not MIN_TEMPERATURE <= v <= MAX_TEMPERATURE:
        raise ValueError(
            f"{what} {v!r} is outside 0 (greedy) or {MIN_TEMPERATURE}..{MAX_TEMPERATURE}: the sampler's arithmetic "
            f"{'overflows' if v < MIN_TEMPERATURE else 'turns into uniform noise'} there; use 0 for greedy decoding"
        )
    return v


def gumbel_problem(temperature: float) -> str | None:
    """Why LLaDA's Gumbel perturbation ``(-log u) ** temperature`` (float64) underflows or overflows, or None."""
    for end in _GUMBEL_ENDS:
        try:
            noise = end**temperature
        except OverflowError:
            noise = math.inf
        if not 2.2250738585072014e-308 <= noise < math.inf:
            return (f"temperature {temperature!r}: LLaDA's Gumbel noise (-log u) ** temperature "
                    f"{'underflows to 0' if noise < 1 else 'overflows'} in float64, so sampling would divide by "
                    "zero: use a temperature of at most 19 (or schedule: dream)")
    return None


class _Sampler(CheckedModel):
    """What every sampler has: a name, a temperature and a seed (per-item seeds are ``seed + index``).

    Every float must be finite and representable in float32 (:func:`srilab.checks.number_problem`); the
    temperature is 0 or in ``MIN_TEMPERATURE..MAX_TEMPERATURE``; a direct construction with a bad value is one
    SrilabError (see :class:`srilab.checks.CheckedModel`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str | None = Field(None, min_length=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0

    _FIELDS: ClassVar[tuple[str, ...]] = ()

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        return check_temperature(v)

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return check_seed(v)

    def key(self) -> dict:
        """The settings that change generations (used in the keys of centres and guards)."""
        return {f: getattr(self, f) for f in ("kind", "temperature", *self._FIELDS)}


class ARSamplerConfig(_Sampler):
    """Left-to-right decoding with a KV cache: greedy at temperature 0, else temperature / top-p sampling."""

    kind: Literal["ar"] = "ar"
    max_new_tokens: int = Field(64, gt=0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    _FIELDS: ClassVar[tuple[str, ...]] = ("max_new_tokens", "top_p")

    @property
    def label(self) -> str:
        return self.name or f"ar-n{self.max_new_tokens}"

    @property
    def num_steps(self) -> int:
        return self.max_new_tokens

    @property
    def response_length(self) -> int:
        return self.max_new_tokens

    @property
    def stochastic(self) -> bool:
        return self.temperature > 0


class DiffusionSamplerConfig(_Sampler):
    """Masked diffusion: ``steps`` denoising steps over ``gen_length`` response positions.

    ``schedule``: ``llada`` (LLaDA's blocks of ``block_length``, 1 = one token per step, left to right;
    ``cfg_scale``, ``remasking``, ReMDM-style ``revision``) or ``dream`` (Dream's own ``diffusion_generate``:
    no blocks, ``alg`` ``maskgit_plus`` / ``topk_margin`` / ``entropy`` / ``origin``, ``alg_temp``, ``top_p``,
    ``top_k``, ``eps``); None: the model's own (Dream checkpoints: dream, every other: llada).

    ``remasking``: one of :data:`~srilab.sampling.diffusion_rules.REMASKING`; ``diffuguard`` is DiffuGuard's
    stochastic annealing remasking, its initial noise weight alpha_0 given as ``anneal_alpha`` (default 0.3) or
    in the name (``diffuguard:0.5``); the config stores the name with alpha_0 (``diffuguard:0.3``), which is
    what the sampler and the keys of centres and guards read."""

    kind: Literal["diffusion"] = "diffusion"
    schedule: Literal["llada", "dream"] | None = None
    steps: int = Field(64, gt=0, le=MAX_STEPS)
    gen_length: int = Field(64, gt=0)
    block_length: int | None = Field(None, gt=0)  # llada; None: gen_length (one block)
    cfg_scale: float = Field(0.0, ge=0.0, le=MAX_CFG_SCALE)
    remasking: str = "low_confidence"  # REMASKING; "diffuguard[:alpha_0]"
    anneal_alpha: float | None = Field(None, ge=0.0, le=1.0)  # remasking diffuguard: alpha_0 (None: in the name)
    revision: float = Field(0.0, ge=0.0, lt=1.0)
    cache: Literal["none", "prefix", "dual"] = "none"  # Fast-dLLM's block-wise KV cache (approximate in-block)
    threshold: float | None = None  # commit every position whose confidence reaches it (parallel decoding)
    alg: Literal["origin", "maskgit_plus", "topk_margin", "entropy"] = "entropy"  # dream
    alg_temp: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, gt=0)
    eps: float = Field(1e-3, gt=0.0, lt=1.0)

    _FIELDS: ClassVar[tuple[str, ...]] = ("schedule", "steps", "gen_length", "block_length", "cfg_scale",
                                          "remasking", "revision", "cache", "threshold")
    _DREAM: ClassVar[tuple[str, ...]] = ("schedule", "steps", "gen_length", "alg", "alg_temp", "top_p", "top_k", "eps")
    _LLADA_ONLY: ClassVar[tuple[str, ...]] = ("block_length", "cfg_scale", "remasking", "revision", "cache",
                                              "threshold", "anneal_alpha")
    _DREAM_ONLY: ClassVar[tuple[str, ...]] = ("alg", "alg_temp", "top_p", "top_k", "eps")

    @model_validator(mode="before")
    @classmethod
    def _anneal(cls, data: Any) -> Any:
        """``remasking: diffuguard`` (with ``anneal_alpha``, or ``diffuguard:<alpha_0>``) is stored as
        ``diffuguard:<alpha_0>`` with ``anneal_alpha`` set, so the key names alpha_0."""
        if not isinstance(data, dict):
            return data
        rule, given = data.get("remasking"), data.get("anneal_alpha")
        if not (isinstance(rule, str) and rule.partition(":")[0] == "diffuguard"):
            if given is not None:
                raise ValueError("anneal_alpha is the alpha_0 of remasking: diffuguard; set remasking: diffuguard")
            return data
        try:
            alpha = remasking_rule(rule)[1]
        except SrilabError as err:
            raise ValueError(str(err)) from None
        if given is not None:
            if isinstance(given, bool) or not isinstance(given, int | float) or not 0.0 <= given <= 1.0:
                return data  # the field's own check names the problem
            if ":" in rule and float(given) != alpha:
                raise ValueError(f"remasking {rule} and anneal_alpha {given} disagree: give alpha_0 once")
            alpha = float(given)
        return {**data, "remasking": f"diffuguard:{alpha!r}", "anneal_alpha": alpha}

    @field_validator("remasking")
    @classmethod
    def _rule(cls, value: str) -> str:
        try:
            remasking_rule(value)
        except SrilabError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _check_blocks(self) -> DiffusionSamplerConfig:
        def changed(fields: tuple[str, ...]) -> list[str]:  # set to something else than the default
            return sorted(f for f in fields if getattr(self, f) != type(self).model_fields[f].default)

        if self.schedule == "dream":
            given = changed(self._LLADA_ONLY)
            if given:
                raise ValueError(f"{', '.join(given)}: LLaDA-schedule settings, not used by schedule: dream")
            return self
        if self.schedule == "llada":
            given = changed(self._DREAM_ONLY)
            if given:
                raise ValueError(f"{', '.join(given)}: Dream-schedule settings, not used by schedule: llada")
        if self.gen_length % self.blocks_of:
            raise ValueError(f"gen_length {self.gen_length} must be a multiple of block_length {self.blocks_of}")
        blocks = self.gen_length // self.blocks_of
        if self.steps % blocks:
            raise ValueError(f"steps {self.steps} must be a multiple of the number of blocks {blocks}")
        return self

    @model_validator(mode="after")
    def _check_threshold(self) -> DiffusionSamplerConfig:
        if self.threshold is not None and self.threshold != self.threshold:
            raise ValueError("threshold must be a number (confidence of the remasking rule), not NaN")
        return self

    @field_validator("alg_temp")
    @classmethod
    def _alg_temp(cls, v: float | None) -> float | None:
        return v if v is None else check_temperature(v, "alg_temp")

    @model_validator(mode="after")
    def _check_arithmetic(self) -> DiffusionSamplerConfig:
        """A temperature the LLaDA schedule's float64 Gumbel noise cannot represent is refused here."""
        if self.schedule != "dream" and self.temperature > 0 and (problem := gumbel_problem(self.temperature)):
            raise ValueError(problem)
        return self

    @property
    def blocks_of(self) -> int:
        """The block length LLaDA's schedule uses (``block_length``, default one block)."""
        return self.block_length or self.gen_length

    def key(self) -> dict:
        fields = self._DREAM if self.schedule == "dream" else self._FIELDS
        out = {f: getattr(self, f) for f in ("kind", "temperature", *fields)}
        for f in ("schedule", "threshold"):  # unset: the key of every config before these settings existed
            if out.get(f) is None:
                out.pop(f, None)
        if out.get("cache") == "none":
            out.pop("cache")
        if "block_length" in out:
            out["block_length"] = self.blocks_of
        return out

    def schedule_for(self, model: LanguageModel) -> str:
        """The schedule this sampler runs on ``model``: its own, else the model family's."""
        if self.schedule is not None:
            return self.schedule
        return "dream" if model.info.get("format") == "dream" else "llada"

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.schedule == "dream":
            return f"dream-s{self.steps}-g{self.gen_length}-{self.alg}"
        return f"diffusion-s{self.steps}-g{self.gen_length}-b{self.blocks_of}"

    @property
    def num_steps(self) -> int:
        return self.steps

    @property
    def response_length(self) -> int:
        return self.gen_length

    @property
    def stochastic(self) -> bool:
        annealed = remasking_rule(self.remasking)[1] > 0  # diffuguard with alpha_0 > 0 draws noise
        return (self.temperature > 0 or self.remasking == "random" or annealed or self.alg == "origin"
                or bool(self.alg_temp))


#: Either sampler family (for type hints).
Sampler = ARSamplerConfig | DiffusionSamplerConfig
#: Either sampler family, told apart by ``kind`` (what a study config's ``samplers`` list holds).
AnySampler = Annotated[ARSamplerConfig | DiffusionSamplerConfig, Field(discriminator="kind")]
_FAMILIES: dict[str, type[_Sampler]] = {"ar": ARSamplerConfig, "diffusion": DiffusionSamplerConfig}


def SamplerConfig(kind: str, **settings: Any) -> ARSamplerConfig | DiffusionSamplerConfig:  # noqa: N802
    """A sampler config of the family ``kind`` (``"ar"`` or ``"diffusion"``); settings are validated by it
    (a setting of the other family is an unknown key)."""
    if kind not in _FAMILIES:
        raise SrilabError(f"unknown sampler kind {kind!r}: use 'ar' or 'diffusion'")
    try:
        return _FAMILIES[kind].model_validate(settings)
    except SrilabError as err:
        raise SrilabError(f"{kind} sampler: {str(err).split(': ', 1)[-1]}") from None
