"""The study config: one YAML file describing a whole study, validated by pydantic.

A study is the matrix model x sampler x dataset x attack, judged by one or more judges, with the SRI
signal and guard computed from the traces::

    name: smollm2-harmbench
    output: runs/smollm2-harmbench
    models:
      - name: smollm2
        path: /path/to/SmolLM2-135M-Instruct.Q4_1.gguf   # a folder, a .gguf file, a hub id, or toy:ar
        samplers:
          - {kind: ar, max_new_tokens: 48, name: greedy}
    datasets:
      - {name: harmbench, source: harmbench, path: harmbench_behaviors.txt, limit: 20, role: harmful}
      - {name: alpaca, source: alpaca, path: alpaca.json, limit: 20, role: benign}
    attacks: [direct, prefill]
    judges: [refusal]

Relative input paths (model and dataset files, ``toy_pair``, judge checkpoints) are read relative to the config
file's folder when they exist there (else to the working directory); ``output`` is relative to the working
directory. The run directory stores the config with those paths made absolute.

Unknown keys and wrong types are rejected with the path to the field (``models.0.samplers.1.steps: ...``);
see :func:`load_config`. So are a key written twice in one mapping, nesting deeper than
:data:`srilab.checks.MAX_DEPTH`, a float that is not finite or not representable in float32 (``.inf``,
``1e-320``), text that is not valid Unicode, an empty list where a list must name something (``roles: []``,
``attacks: []``), an option an attack or defense does not take, and a config that would not read back the same
from the run directory's ``config.json``. ``toy:ar`` / ``toy:diffusion`` name the embedded toy pair (``toy_pair`` picks
another pair directory) and ``source: toy`` its evaluation sets (``split``: :func:`srilab.toy.corpus.eval_sets`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

import srilab.toy.oracle  # noqa: F401  (registers the oracle judge)
from srilab.checks import pydantic_problems
from srilab.defenses import DEFENSES
from srilab.errors import SrilabError
from srilab.sampling.api import AnySampler
from srilab.study.specs import (  # noqa: F401  (DTYPES, check_seed, check_device, MAX_SEED: re-exported)
    DTYPES,
    MAX_SEED,
    AnalysisSpec,
    DefenseSpec,
    ExecutorSpec,
    JudgeSpec,
    ProtocolSpec,
    SRISpec,
    StrictSpec,
    check_device,
    check_name,
    check_seed,
)

Role = Literal["harmful", "benign", "capability"]
#: The roles of benign items in the evaluation protocol (see :mod:`srilab.study.protocol`).
BenignRole = Literal["centre", "guard_fit", "calibration", "eval_seen_topics"]
TOY_PREFIX = "toy:"
MAX_BOOT = 1_000_000  # bootstrap resamples: more is minutes of report time for no precision


class ModelSpec(StrictSpec):
    """One model and the samplers it is run under (the same weights may appear under several samplers)."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)  # folder, .gguf file, hub id, or toy:ar / toy:diffusion
    kind: Literal["ar", "diffusion"] | None = None
    dtype: str | None = None
    device: str = "cpu"
    gguf_file: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load .bin/.pt/.pkl weights (unpickling runs code: only for files you trust)
    # load a checkpoint with missing, unexpected or misshapen tensors (random ones in their place), with a warning
    allow_partial_checkpoint: bool = False
    samplers: list[AnySampler] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPES:
            raise ValueError(f"unknown dtype {v!r}: use one of {', '.join(DTYPES)}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)

    @model_validator(mode="after")
    def _unique_samplers(self) -> ModelSpec:
        labels = [s.label for s in self.samplers]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"sampler names must be unique within a model; repeated: {dup} (set name: ...)")
        for s in self.samplers:
            check_name(s.label)
        return self

    @property
    def is_toy(self) -> bool:
        return self.path.startswith(TOY_PREFIX)


class DatasetSpec(StrictSpec):
    """A benchmark (``srilab.data``), a plain prompt file (``source: prompts``) or a toy-world set."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1)  # advbench | harmbench | jailbreakbench | strongreject | xstest | alpaca | ...
    path: str | None = None  # a local file; None: the hub (source's default id, or hub_id)
    hub_id: str | None = None
    split: str | None = None
    column: str | None = None  # source: prompts -- the column holding the prompt
    limit: int | None = Field(None, gt=0)  # the first N rows (toy sets: N evenly spaced, so every topic shows)
    # harmful: attacked; benign: asked directly (SRI centre, guard fit, calibration, evaluation);
    # capability: asked directly, answers checked against the item's answer (the capability cost)
    role: Role = "harmful"
    on_error: Literal["raise", "skip"] = "raise"
    # benign: the topic group of an item -- "category" (the row's category; the toy world's task group) or
    # "hash:N" (N groups by a hash of the item id, for sets without categories); whole groups are held out
    group_by: str = "category"
    # benign: the protocol roles this set's seen-topic items may take (default: all four)
    roles: list[BenignRole] | None = None
    # harmful: the attacks run on this set (default: every attack of the study)
    attacks: list[str] | None = None

    @field_validator("roles", "attacks")
    @classmethod
    def _not_empty(cls, v: list[str] | None, info) -> list[str] | None:
        if v is not None and not v:
            what = "protocol roles" if info.field_name == "roles" else "attacks"
            raise ValueError(f"an empty list names no {what}: drop the key for the default (all), or name at least one")
        if v is not None and len(set(v)) != len(v):
            twice = sorted({x for x in v if v.count(x) > 1})
            raise ValueError(f"{info.field_name} names {twice} twice: name each once")
        return v

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: str) -> str:
        if v != "category" and not (v.startswith("hash:") and v[5:].isdigit() and int(v[5:]) >= 2):
            raise ValueError(f"group_by must be 'category' or 'hash:N' with N >= 2, got {v!r}")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v)


class AttackSpec(StrictSpec):
    """An attack from :mod:`srilab.attacks` and its settings."""

    name: str = Field(min_length=1)
    label: str | None = Field(None, min_length=1)  # how it is named in the results (default: name)
    target: str | None = None  # default: the row's own target, else "Sure, here is how to do that:"
    injection_fraction: float = Field(0.25, ge=0.0, le=1.0)
    step_markers: list[str] | None = None
    marker_span: int | None = Field(None, gt=0)  # response_template: tokens from one marker to the next
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.label or self.name

    @field_validator("label")
    @classmethod
    def _safe_label(cls, v: str | None) -> str | None:
        return v if v is None else check_name(v)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("an empty target forces nothing: drop target for the row's own, or write the text")
        return v

    @field_validator("step_markers")
    @classmethod
    def _markers(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not all(m.strip() for m in v)):
            raise ValueError("step_markers must be non-empty text, at least one: drop the key for the default markers")
        return v

    @model_validator(mode="after")
    def _known_options(self) -> AttackSpec:
        from srilab.attacks import ATTACKS

        if self.name in ATTACKS:  # an unknown name is named when the run starts (plugins may register late)
            try:
                ATTACKS.get(self.name).check_options(self.options)
            except SrilabError as err:
                raise ValueError(str(err)) from None
        return self


class StudyConfig(StrictSpec):
    name: str = Field("study", min_length=1)
    output: str = "runs/study"
    seed: int = 0
    batch_size: int = Field(8, gt=0)
    toy_pair: str | None = None  # a toy pair directory for toy:ar / toy:diffusion (default: the shipped pair)
    models: list[ModelSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    attacks: list[AttackSpec] = Field(default_factory=lambda: [AttackSpec(name="direct")], min_length=1)
    judges: list[JudgeSpec] = Field(default_factory=lambda: [JudgeSpec(name="refusal")], min_length=1)
    refusal_judge: str | None = None  # the judge (key) whose verdicts decide refusal (default: first that decides it)
    asr_judge: str | None = None  # the judge (key) that decides attack success (default: first harm judge)
    sri: SRISpec = Field(default_factory=SRISpec)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    defenses: list[DefenseSpec] = Field(default_factory=list)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    n_boot: int = Field(1000, ge=100, le=MAX_BOOT)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)  # where generations run: not in canonical()

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return check_seed(v)

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an empty list attacks nothing: name at least one attack (direct asks as written)")
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @field_validator("defenses", mode="before")
    @classmethod
    def _defense_names(cls, v: Any) -> Any:
        return [{"name": d} if isinstance(d, str) else d for d in v] if isinstance(v, list) else v

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_names(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an empty list judges nothing: name at least one judge (refusal decides refusal)")
        return [{"name": j} if isinstance(j, str) else j for j in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _cross_checks(self) -> StudyConfig:
        for what, names in (
            ("model", [m.name for m in self.models]),
            ("dataset", [d.name for d in self.datasets]),
            ("attack", [a.key for a in self.attacks]),
            ("judge", [j.key for j in self.judges]),
        ):
            dup = sorted({x for x in names if names.count(x) > 1})
            if dup:
                raise ValueError(f"{what} names must be unique; repeated: {dup}")
        benign = [d.name for d in self.datasets if d.role == "benign"]
        harmful = [d.name for d in self.datasets if d.role == "harmful"]
        if not harmful:
            raise ValueError("at least one dataset needs role: harmful (the attacked requests)")
        attacks = [a.key for a in self.attacks]
        for d in self.datasets:
            if d.attacks is not None and d.role != "harmful":
                raise ValueError(f"dataset {d.name!r}: attacks apply to harmful datasets only")
            missing = [a for a in d.attacks or () if a not in attacks]
            if missing:
                raise ValueError(f"dataset {d.name!r}: attacks {missing} are not among the study's attacks {attacks}")
            if d.roles is not None and d.role != "benign":
                raise ValueError(f"dataset {d.name!r}: roles apply to benign datasets only")
        for d in self.defenses:
            if d.name not in DEFENSES:
                raise ValueError(f"unknown defense {d.name!r}: choose one of {', '.join(DEFENSES.names())}")
        if self.sri.harmful is not None and self.sri.harmful not in harmful:
            raise ValueError(f"sri.harmful {self.sri.harmful!r} is not a harmful dataset; harmful: {harmful}")
        if self.sri.enabled and not benign:
            raise ValueError("sri needs a dataset with role: benign (or set sri.enabled: false)")
        keys = [j.key for j in self.judges]
        for what in ("asr_judge", "refusal_judge"):
            if getattr(self, what) is not None and getattr(self, what) not in keys:
                raise ValueError(f"{what} {getattr(self, what)!r} is not one of the judges {keys}")
        if self.refusal_judge is not None and self.judge(self.refusal_judge).decides != "refused":
            raise ValueError(f"refusal_judge {self.refusal_judge!r} does not decide refusal: name a refusal judge")
        if not any(j.decides == "refused" for j in self.judges):
            raise ValueError(
                "a judge that decides refusal is required (refusal rates and SRI centres): add 'refusal' to judges"
            )
        for j in self.judges:
            if j.name in ("harmbench", "llama_guard") and not j.path:
                raise ValueError(f"judge {j.key!r} needs a path (a checkpoint folder or hub id)")
        return self

    # ------------------------------------------------------------------------------------------ helpers
    def judge(self, key: str) -> JudgeSpec:
        return next(j for j in self.judges if j.key == key)

    def refusal_key(self) -> str:
        """The judge whose verdicts decide refusal: ``refusal_judge``, else the first judge that decides it."""
        return self.refusal_judge or next(j.key for j in self.judges if j.decides == "refused")

    def harm_judge(self) -> str | None:
        """The judge deciding attack success: ``asr_judge``, else the first judge that decides harm (None: no
        harm judge, attack success is then "not refused", a proxy)."""
        if self.asr_judge is not None:
            return self.asr_judge
        return next((j.key for j in self.judges if j.decides == "harmful"), None)

    def canonical(self) -> dict[str, Any]:
        """The config as plain JSON data (defaults filled in): what a resumed run must match (not the executor).
        Settings added later are left out at their default, so a run started before them still resumes."""
        data = json.loads(self.model_dump_json(exclude={"executor"}))
        for m in data["models"]:
            if m.get("allow_partial_checkpoint") is False:
                del m["allow_partial_checkpoint"]
        return data


def _validate(data: Any, source: str) -> StudyConfig:
    try:  # the raw validator: pydantic's errors, each with the path to its field
        return StudyConfig.__pydantic_validator__.validate_python(data)
    except ValidationError as err:
        # A sampler's family tag ("ar" / "diffusion", pydantic's discriminator step) is not a key the user wrote.
        raise SrilabError(f"{source}: " + pydantic_problems(err, skip=("ar", "diffusion"))) from None


def parse_config(data: Any, *, source: str = "config") -> StudyConfig:
    """Validate already-parsed YAML/JSON data; every problem is named by the path to its field.

    The validated config must read back as itself from its stored form (:meth:`StudyConfig.canonical`, what
    ``config.json`` holds and what ``--resume`` and ``srilab report`` read): a value that would not is refused
    here, before anything runs."""
    if not isinstance(data, dict):
        raise SrilabError(f"{source}: the study config must be a mapping of keys (name, models, datasets, ...)")
    cfg = _validate(data, source)
    stored = cfg.canonical()
    try:
        again = _validate(json.loads(json.dumps(stored, allow_nan=False)), source).canonical()
    except (SrilabError, ValueError) as err:
        raise SrilabError(f"{source}: the config would not read back from the run's config.json ({err})") from None
    if again != stored:
        from srilab.study.store import first_difference

        raise SrilabError(
            f"{source}: the config would not read back the same from the run's config.json "
            f"({first_difference(stored, again)}): write the value plainly"
        )
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study config file (YAML or JSON): :func:`srilab.study.config_file.read_config_file`
    (aliases, a key written twice and deep nesting refused; relative input paths resolved), then
    :func:`parse_config`."""
    from srilab.study.config_file import read_config_file

    data = read_config_file(path)
    return parse_config(data, source=str(path))
