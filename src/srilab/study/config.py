"""The study config: one YAML file describing a whole study, validated by pydantic.

A study is the matrix model x sampler x dataset x attack, judged by one or more judges, with the SRI
signal and guard computed from the traces::

    name: smollm2-harmbench
    output: runs/smollm2-harmbench
    seed: 0
    batch_size: 8
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

Relative input paths (model and dataset files, ``toy_pair``, judge checkpoints) are read relative to the
config file's folder when they exist there (else relative to the working directory); ``output`` is
relative to the working directory. The run directory stores the config with those paths made absolute.

Unknown keys and wrong types are rejected with the path to the field (``models.0.samplers.1.steps: ...``);
see :func:`load_config`. ``toy:ar`` / ``toy:diffusion`` name the embedded toy pair (``toy_pair`` picks
another pair directory) and ``source: toy`` its evaluation sets (``split``: one of
:func:`srilab.toy.world.eval_sets`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import srilab.toy.oracle  # noqa: F401  (registers the oracle judge)
from srilab.errors import SrilabError
from srilab.judges import JUDGES
from srilab.sampling.api import AnySampler

Role = Literal["harmful", "benign"]
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
    samplers: list[AnySampler] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _check_name(v)

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
    limit: int | None = Field(None, gt=0)
    role: Role = "harmful"  # harmful: attacked; benign: asked directly (SRI centre, guard fit, negatives)
    on_error: Literal["raise", "skip"] = "raise"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return _check_name(v)


class AttackSpec(_Strict):
    """An attack from :mod:`srilab.attacks` and its settings."""

    name: str = Field(min_length=1)
    target: str | None = None  # default: the row's own target, else "Sure, here is how to do that:"
    injection_fraction: float = Field(0.25, ge=0.0, le=1.0)
    step_markers: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


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
    harmless: str | None = None  # benign dataset for the harmless centre and the guard fit (default: first)
    harmful: str | None = None  # harmful dataset whose refused direct answers make the harmful centre
    holdout: float = Field(0.5, ge=0.0, lt=1.0)  # share of ``harmless`` kept out of the fit as negatives
    detector: str = "autoencoder"
    quantile: float = Field(0.99, gt=0.0, lt=1.0)


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
    n_boot: int = Field(1000, ge=100)

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v] if isinstance(v, list) else v

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_names(cls, v: Any) -> Any:
        return [{"name": j} if isinstance(j, str) else j for j in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _cross_checks(self) -> StudyConfig:
        for what, names in (
            ("model", [m.name for m in self.models]),
            ("dataset", [d.name for d in self.datasets]),
            ("attack", [a.name for a in self.attacks]),
            ("judge", [j.key for j in self.judges]),
        ):
            dup = sorted({x for x in names if names.count(x) > 1})
            if dup:
                raise ValueError(f"{what} names must be unique; repeated: {dup}")
        benign = [d.name for d in self.datasets if d.role == "benign"]
        harmful = [d.name for d in self.datasets if d.role == "harmful"]
        if not harmful:
            raise ValueError("at least one dataset needs role: harmful (the attacked requests)")
        if self.sri.harmless is not None and self.sri.harmless not in benign:
            raise ValueError(f"sri.harmless {self.sri.harmless!r} is not a benign dataset; benign: {benign}")
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
        """The config as plain JSON data (defaults filled in): what a resumed run must match."""
        return json.loads(self.model_dump_json())


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


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study config file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise SrilabError(f"study config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SrilabError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
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
