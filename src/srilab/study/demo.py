"""The demo study's config (``srilab/toy/demo.yaml``, on the shipped toy pair) with ``srilab demo``'s choices;
:func:`srilab.pipeline.demo.run_demo` runs it through the runner of ``srilab run`` and reports it.

The demo is a study like any other: its output directory is a run directory (resumable after a kill with
``srilab run --resume DIR``; ``srilab report DIR`` rebuilds ``report.html`` and ``summary.json`` from files
alone). What the demo adds is only the choice of config: ``--quick`` (or ``--limit N``) cuts every set to N
evenly spaced items (the benign train phrasings to 2N, since they fill three roles), and ``--quick`` leaves out
the defenses that answer again (those with a ``limit``: SmoothLLM, self-reminder, DiffuGuard's repair), which
the full demo runs on a bounded subset of each role; ``--pair`` another toy
pair; ``--detector`` the SRI guard's detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from srilab.errors import SrilabError
from srilab.study.config import StudyConfig, parse_config
from srilab.toy.pair import pair_ref

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "toy" / "demo.yaml"
QUICK_ITEMS = 12
#: Sets that fill several protocol roles get this many times the per-set limit.
LIMIT_SCALE = {"benign-train": 2}


def regenerated_limit(n: int) -> int:
    """Items per role for the defenses that answer again (SmoothLLM, self-reminder, DiffuGuard) in a demo cut to
    ``n`` items per set: a third of them, at least 2 (and never more than the demo config's own limit)."""
    return max(2, n // 3)


def demo_config(
    *, out: str | Path = "demo-out", quick: bool = False, limit: int | None = None, pair: str | Path | None = None,
    detector: str | None = None, batch_size: int | None = None,
) -> StudyConfig:
    """The demo study's config with the command line's choices applied (validated)."""
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    if limit is not None and limit < 1:
        raise SrilabError(f"--limit must be at least 1, got {limit}")
    if batch_size is not None and batch_size < 1:
        raise SrilabError(f"--batch-size must be at least 1, got {batch_size}")
    data["output"] = str(out)
    if pair is not None:
        data["toy_pair"] = pair_ref(pair)
    n = limit if limit is not None else (QUICK_ITEMS if quick else None)
    if n is not None:
        data["name"] = "demo-quick" if quick and limit is None else f"demo-limit-{n}"
        for d in data["datasets"]:
            d["limit"] = n * LIMIT_SCALE.get(d["name"], 1)
        for d in data.get("defenses", []):
            if isinstance(d, dict) and d.get("limit"):  # the costly ones (they generate again) carry a limit
                d["limit"] = min(d["limit"], regenerated_limit(n))
        if quick and limit is None:  # the quick look: the defenses that generate again wait for the full demo
            data["defenses"] = [d for d in data.get("defenses", []) if not (isinstance(d, dict) and d.get("limit"))]
    if detector is not None:
        data["sri"]["detector"] = detector
    if batch_size is not None:
        data["batch_size"] = batch_size
    return parse_config(data, source=str(DEMO_CONFIG))
