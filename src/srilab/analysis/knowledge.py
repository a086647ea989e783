"""The knowledge ceiling's figures, from a run's ``knowledge.jsonl`` (the run's knowledge stage,
:mod:`srilab.study.knowledge`, wrote it): per arm, the ceiling (attacked requests the arm knows), raw attack
success and attack success among known requests, each with k, n and a Wilson interval."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from srilab import stats
from srilab.study.knowledge import knowledge_journal, unit_of
from srilab.study.store import RunDir


def knowledge_figures(run: RunDir, arm_rows: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per arm (rows judged, with ``protocol_role`` and ``harmful``): the ceiling, raw attack success and attack
    success among the requests the arm knows, per format too; {} when the run has no knowledge answers."""
    answers: dict[str, dict[str, dict[str, bool]]] = defaultdict(lambda: defaultdict(dict))
    for a in knowledge_journal(run).rows():
        answers[a["arm"]][a["unit"]][a["format"]] = bool(a["knows"])
    out: dict[str, dict[str, Any]] = {}
    for arm, rows in arm_rows.items():
        if arm not in answers:
            continue
        attacked = [r for r in rows if r["protocol_role"] == "attacked"]
        units = sorted({unit_of(r) for r in attacked} & set(answers[arm]))
        known = {u for u in units if any(answers[arm][u].values())}
        formats = sorted({f for u in units for f in answers[arm][u]})
        scored = [r for r in attacked if unit_of(r) in answers[arm]]
        out[arm] = {
            "ceiling": stats.rate(np.array([u in known for u in units], dtype=bool)),
            "per_format": {f: stats.rate(np.array([answers[arm][u].get(f, False) for u in units], dtype=bool))
                           for f in formats},
            "asr_raw": stats.rate(np.array([r["harmful"] for r in scored], dtype=bool)),
            "asr_known": stats.rate(np.array([r["harmful"] for r in scored if unit_of(r) in known], dtype=bool)),
            "requests": len(units), "known": sorted(known),
        }
    return out
