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
see :func:`load_config`. ``toy:ar`` / ``toy:diffusion`` name the embedded toy pair (``toy_pair`` picks
another pair directory) and ``source: toy`` its evaluation sets (``split``: :func:`srilab.toy.corpus.eval_sets`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import srilab.toy.oracle  # noqa: F401  (registers the oracle judge)
from srilab.defenses import DEFENSES
from srilab.errors import SrilabError
from srilab.judges import JUDGES
from srilab.sampling.api import AnySampler
from srilab.sri.detectors import DETECTORS
from srilab.study.executor import ExecutorSpec
from srilab.study.guard_variants import check_variant

Role = Literal["harmful", "benign", "capability"]
#: The roles of benign items in the evaluation protocol (see :mod:`srilab.study.protocol`).
BenignRole = Literal["centre", "guard_fit", "calibration", "eval_seen_topics"]
TOY_PREFIX = "toy:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """One model and the samplers it is run under (the same weights may appear under several samplers)."""

    name: str = Field(min_length=1)
    path: str = Field(min_length=1)  # folder, .gguf file, hub id, or toy:ar / toy:diffusion
    kind: Literal["ar", "diffusion"] | None = None
    dtype: str | None = None
    device: str = "cpu"
    gguf_file: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load .bin/.pt/.pkl weights (unpickling runs code: only for files you trust)
    samplers: list[AnySampler] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _check_name(v)

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
            _check_name(s.label)
        return self

    @property
    def is_toy(self) -> bool:
        return self.path.startswith(TOY_PREFIX)


class DatasetSpec(_Strict):
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

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: str) -> str:
        if v != "category" and not (v.startswith("hash:") and v[5:].isdigit() and int(v[5:]) >= 2):
            raise ValueError(f"group_by must be 'category' or 'hash:N' with N >= 2, got {v!r}")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _check_name(v)


class AttackSpec(_Strict):
    """An attack from :mod:`srilab.attacks` and its settings."""

    name: str = Field(min_length=1)
    label: str | None = None  # how it is named in the results (default: name); lets one attack run twice
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
        return v if v is None else _check_name(v)


class JudgeSpec(_Strict):
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


class SRISpec(_Strict):
    """SRI centres, signal and guard, computed from the traces by ``srilab report``."""

    enabled: bool = True
    layer: str | int = "last"
    pooling: Literal["generated", "response"] = "generated"
    harmful: str | None = None  # harmful dataset whose refused direct answers make the harmful centre
    detector: str = "autoencoder"
    variant: str = "auto"  # auto | paper | representation+detector+scaling: srilab.study.guard_variants
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


class ProtocolSpec(_Strict):
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


class DefenseSpec(_Strict):
    """A baseline defense from :data:`srilab.defenses.DEFENSES`, scored on the run's records after judging."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, gt=0)  # per arm and role at most this many (attacked: this many successes + others)


class AnalysisSpec(_Strict):
    """Which analysis stages the report runs besides rates and the SRI guard."""

    dynamics_every: int = Field(8, ge=0)  # judge intermediate canvases every this many steps (0: off)
    text_baseline: bool = True  # the benign-only TF-IDF detector on the answer text
    # every guard variant's figures beside the chosen guard's (srilab.study.guard_variants): costly, off by default
    guard_variants: bool = False
    partial_refusal: Literal["refused", "complied", "separate"] = "refused"  # how a partial refusal counts


class StudyConfig(_Strict):
    name: str = Field("study", min_length=1)
    output: str = "runs/study"
    seed: int = 0
    batch_size: int = Field(8, gt=0)
    toy_pair: str | None = None  # a toy pair directory for toy:ar / toy:diffusion (default: the shipped pair)
    models: list[ModelSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    attacks: list[AttackSpec] = Field(default_factory=lambda: [AttackSpec(name="direct")])
    judges: list[JudgeSpec] = Field(default_factory=lambda: [JudgeSpec(name="refusal")])
    refusal_judge: str | None = None  # the judge (key) whose verdicts decide refusal (default: first that decides it)
    asr_judge: str | None = None  # the judge (key) that decides attack success (default: first harm judge)
    sri: SRISpec = Field(default_factory=SRISpec)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    defenses: list[DefenseSpec] = Field(default_factory=list)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    n_boot: int = Field(1000, ge=100)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)  # where generations run: not in canonical()

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return check_seed(v)

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @field_validator("defenses", mode="before")
    @classmethod
    def _defense_names(cls, v: Any) -> Any:
        return [{"name": d} if isinstance(d, str) else d for d in v] if isinstance(v, list) else v

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_names(cls, v: Any) -> Any:
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
        """The config as plain JSON data (defaults filled in): what a resumed run must match (not the executor)."""
        return json.loads(self.model_dump_json(exclude={"executor"}))


DTYPES = ("float32", "float16", "bfloat16")
#: Seeds are per item (``seed`` + the item's index) and feed numpy and torch generators: keep them in 31 bits.
MAX_SEED = 2**31 - 1


def check_seed(v: int) -> int:
    if not 0 <= v <= MAX_SEED - 10**6:
        raise ValueError(f"seed {v} is out of range: use 0 <= seed <= {MAX_SEED - 10**6}")
    return v


def check_device(v: str) -> str:
    """``cpu``, ``cuda[:N]`` or ``mps``, and only a device that this machine has."""
    from srilab.io import device_problem

    if problem := device_problem(v):
        raise ValueError(problem)
    return v


def _check_name(v: str) -> str:
    bad = set(v) & set('/\\:*?"<>|\n\t ')
    if bad or v.startswith("."):
        raise ValueError(f"{v!r} is used in file names: use letters, digits, '-', '_' or '.' (no spaces or slashes)")
    return v


def _field_path(loc: tuple) -> str:
    # A sampler's family tag ("ar" / "diffusion", pydantic's discriminator step) is not a key the user wrote.
    parts = [str(p) for i, p in enumerate(loc) if not (p in ("ar", "diffusion") and i and isinstance(loc[i - 1], int))]
    return ".".join(parts) or "(top level)"


def parse_config(data: Any, *, source: str = "config") -> StudyConfig:
    """Validate already-parsed YAML/JSON data; every problem is named by the path to its field."""
    if not isinstance(data, dict):
        raise SrilabError(f"{source}: the study config must be a mapping of keys (name, models, datasets, ...)")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_field_path(e['loc'])}: {msg}")
        raise SrilabError(f"{source}: " + "; ".join(problems)) from None


MAX_CONFIG_BYTES = 1 << 20  # a study config is a few kilobytes; anything much larger is the wrong file


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study config file (YAML or JSON).

    YAML anchors and aliases (``&a`` / ``*a``) are refused: a study config does not need them, and nested
    aliases expand exponentially (a "billion laughs" file would exhaust the memory).
    """
    from srilab.io import read_text

    path = Path(path)
    if path.is_dir():
        raise SrilabError(f"study config {path} is a directory: pass the study YAML file")
    text = read_text(path, "study config", max_bytes=MAX_CONFIG_BYTES)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise SrilabError(
                    f"{path}:{mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in a study config: "
                    "write the values out"
                )
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise SrilabError(f"{path}{where}: not valid YAML ({problem})") from None
    if isinstance(data, dict):
        data = _resolve_inputs(data, path.resolve().parent)
    return parse_config(data, source=str(path))


def _resolve_inputs(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative input paths that exist beside the config file are made absolute (see the module docstring)."""

    def fix(value: Any) -> Any:
        if not isinstance(value, str) or not value or Path(value).is_absolute() or ":" in value.split("/")[0]:
            return value  # toy:..., package:..., hub ids with a scheme, absolute paths
        candidate = base / value
        return str(candidate.resolve()) if candidate.exists() else value

    data = json.loads(json.dumps(data, default=str))
    if "toy_pair" in data:
        data["toy_pair"] = fix(data["toy_pair"])
    for key in ("models", "datasets", "judges"):
        for entry in data.get(key) or []:
            if isinstance(entry, dict) and "path" in entry:
                entry["path"] = fix(entry["path"])
    return data
