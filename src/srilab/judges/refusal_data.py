"""Human-labelled answers of four chat models, for judges measured leave-one-model-out.

- **gpt4**, **llama2**, **mistral**: XSTest v2's completions of GPT-4, Llama-2-70b-chat and Mistral-7B-Instruct
  (Roettger et al. 2024, github.com/paul-rottger/exaggerated-safety, CC BY 4.0), 450 answers each (250 safe
  prompts of ten types, 200 unsafe contrast prompts), two annotators and a ``final_label``. They are read
  from the shared data folder (:data:`XSTEST_DIR`, or ``$SRILAB_XSTEST_COMPLETIONS``), never fetched.
- **smollm2**: the project's judge validation set (:mod:`srilab.judges.validation`), 620 answers of
  SmolLM2-135M-Instruct hand-labelled against its rubric, both halves.

Every answer is one :class:`LabelledAnswer`: its model, id, prompt type, request, response and class
(``full_compliance`` / ``full_refusal`` / ``partial_refusal``). The label is the *answer's* refusal, not the
request's harmfulness: a safe prompt can be refused and an unsafe one answered.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from srilab.errors import SrilabError

__all__ = ["MODELS", "XSTEST_DIR", "XSTEST_FILES", "LabelledAnswer", "fingerprint", "load_all", "load_model"]

#: The shared XSTest completions (a checkout's sibling ``shared`` folder).
XSTEST_DIR = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "xstest-completions"
#: Model name -> the XSTest completions file.
XSTEST_FILES = {
    "gpt4": "xstest_v2_completions_gpt4.csv",
    "llama2": "xstest_v2_completions_llama2orig.csv",
    "mistral": "xstest_v2_completions_mistralinstruct.csv",
}
#: The four models, in the order tables list them.
MODELS = ("gpt4", "llama2", "mistral", "smollm2")
_XSTEST_CLASSES = {"1_full_compliance": "full_compliance", "2_full_refusal": "full_refusal",
                   "3_partial_refusal": "partial_refusal"}


@dataclass(frozen=True)
class LabelledAnswer:
    """One answer of one model and its human label."""

    model: str
    id: str
    type: str
    request: str
    response: str
    label: str  # full_compliance | full_refusal | partial_refusal


def xstest_dir() -> Path:
    """Where the XSTest completions are: ``$SRILAB_XSTEST_COMPLETIONS`` or :data:`XSTEST_DIR`."""
    env = os.environ.get("SRILAB_XSTEST_COMPLETIONS")
    return Path(env) if env else XSTEST_DIR


def load_model(model: str, folder: str | Path | None = None) -> list[LabelledAnswer]:
    """The labelled answers of one of :data:`MODELS` (``folder``: the XSTest completions, or the validation set
    for ``smollm2``)."""
    if model == "smollm2":
        from srilab.judges.validation import load_validation_set

        return [LabelledAnswer("smollm2", it.id, it.type, it.request, it.response, it.refusal)
                for it in load_validation_set(folder)]
    if model not in XSTEST_FILES:
        raise SrilabError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    file = (Path(folder) if folder is not None else xstest_dir()) / XSTEST_FILES[model]
    if not file.is_file():
        raise SrilabError(f"{file} does not exist: the XSTest completions live in shared/datasets/xstest-completions "
                          "(or set SRILAB_XSTEST_COMPLETIONS)")
    rows = []
    with file.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            label = _XSTEST_CLASSES.get(row["final_label"].strip())
            if label is None:
                raise SrilabError(f"{file}: answer {row['id']} has label {row['final_label']!r}")
            rows.append(LabelledAnswer(model, row["id"], row["type"], row["prompt"], row["completion"] or "", label))
    return rows


def load_all(models: Sequence[str] = MODELS, xstest_folder: str | Path | None = None) -> list[LabelledAnswer]:
    """Every labelled answer of ``models``, model by model."""
    out: list[LabelledAnswer] = []
    for m in models:
        out.extend(load_model(m, None if m == "smollm2" else xstest_folder))
    return out


def fingerprint(answers: Sequence[LabelledAnswer]) -> str:
    """SHA-256 of the answers' models, requests, responses and labels (what a trained judge saw)."""
    h = hashlib.sha256()
    for a in answers:
        for part in (a.model, a.request, a.response, a.label):
            h.update(part.encode("utf-8") + b"\x00")
    return h.hexdigest()
