"""The claim table: every claim a run pre-registered (``claims.json``, :mod:`srilab.study.claims`) tested on the
run's summary, the first table of every report (``claims`` in ``summary.json``).

Each result carries n, the effect with its interval, p, the minimum detectable effect at this n (80% power, the
claim's alpha) and a verdict:

- **holds**: significant in the claimed direction and, with a claimed range, the estimate inside it;
- **refuted**: significant in the other direction, or the interval entirely outside the claimed region;
- **inconclusive**: neither (n too small to say; the MDE says how large an effect this n could see);
- **not tested**: the run holds no rows for it (an arm or attack missing; the note says which).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from srilab import stats
from srilab.analysis import claim_tests as t
from srilab.study.claims import default_claims


def verdict(result: dict[str, Any], claimed: list[float] | None, right: bool, wrong: bool) -> str:
    """holds / refuted / inconclusive from the claim's significance and its interval (module docstring)."""
    est, ci = result.get("effect"), result.get("ci")
    if est is None:
        return "not tested"
    lo, hi = (claimed or [None, None])
    lo, hi = (-math.inf if lo is None else lo), (math.inf if hi is None else hi)
    if wrong or (ci and ci[0] is not None and (ci[1] < lo or ci[0] > hi)):
        return "refuted"
    if right and lo <= est <= hi:
        return "holds"
    return "inconclusive"


def _tests() -> dict[str, Any]:
    """The test of each kind of claim."""
    return {"relative_reduction": t.paired_rate_test, "paired_diff": t.paired_rate_test,
            "diff_in_diff": t.diff_in_diff_test, "rate_above": t.rate_above_test, "auroc_above": t.auroc_test,
            "tpr_gain": t.tpr_gain_test, "cost_ratio": t.cost_ratio_test}


def claim_specs(cfg, run_path=None) -> list[dict[str, Any]]:
    """The claims a run pre-registered (``claims.json``, written when it started), else the config's defaults."""
    recorded = Path(run_path) / "claims.json" if run_path is not None else None
    if recorded is not None and recorded.is_file():
        return json.loads(recorded.read_text(encoding="utf-8"))
    return default_claims(cfg)


def evaluate_claims(specs: list[dict[str, Any]], summary: dict[str, Any], private: dict[str, Any],
                    *, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Every claim's result: the spec, then n, effect, ci, p, mde, verdict and a note."""
    out, tests = [], _tests()
    for spec in specs:
        missing = [a for a in spec["arms"] if a is None or a not in summary["arms"]]
        if missing or (spec["kind"] in ("relative_reduction", "paired_diff", "diff_in_diff", "rate_above")
                       and not spec["attacks"] and spec.get("outcome") != "capability"):
            why = "an arm it compares is not in this study" if missing else "none of its attacks was run"
            out.append({**spec, "n": 0, "effect": None, "ci": None, "p": None, "mde": None,
                        "verdict": "not tested", "note": why})
            continue
        result = tests[spec["kind"]](spec, summary, private, n_boot=n_boot, seed=seed)
        right, wrong = result.pop("right"), result.pop("wrong")
        out.append({**spec, **result, "verdict": verdict(result, spec["claimed_range"], right, wrong)})
    return out


def claims_rate(claims: list[dict[str, Any]]) -> dict[str, Any]:
    """How many claims each verdict got, with the held share's interval (for the terminal line)."""
    verdicts = [c["verdict"] for c in claims]
    tested = [v for v in verdicts if v != "not tested"]
    return {v: verdicts.count(v) for v in ("holds", "refuted", "inconclusive", "not tested")} | {
        "held": stats.rate(np.array([v == "holds" for v in tested], dtype=bool))}
