"""The out-of-topic threshold's leave-one-topic-out autoencoders: batched vs one by one, ratios from this run.

    python benchmarks/bench_guard_fit.py [--groups 16] [--rows 122] [--steps 80] [--repeats 3]

``SRIGuard.fit(..., groups=...)`` fits one autoencoder per topic group on the other groups' rows (16 in the
demo's arms, 122 rows of 80 steps). They are trained as one batched network
(:meth:`srilab.sri.detectors.AutoencoderDetector.fit_many`); this times that against fitting the same
training sets one by one (``AutoencoderDetector(seed).fit(X)`` each, as before), median of ``--repeats``, and
prints the largest relative difference of the held-out scores (float rounding grown over 300 Adam epochs).
The rows are s_t-like curves saturated near 1, a group offset each, so the fits see the demo's shapes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

from srilab.sri.detectors import AutoencoderDetector, fit_detectors


def signals(groups: int, rows: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.arange(rows) % groups
    offset = rng.uniform(0.0, 0.02, groups)[label][:, None]
    x = 1.0 - offset - np.abs(rng.normal(0.0, 0.01, (rows, steps)))
    return np.clip(x, 0.0, 1.0), label


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--rows", type=int, default=122)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    X, label = signals(args.groups, args.rows, args.steps)
    train = [X[label != g] for g in range(args.groups)]
    held = [X[label == g] for g in range(args.groups)]

    def one_by_one() -> list:
        return [AutoencoderDetector(0).fit(t) for t in train]

    def batched() -> list:
        return fit_detectors("autoencoder", train, 0)

    times: dict[str, list[float]] = {"one by one": [], "batched": []}
    fitted: dict[str, list] = {}
    for _ in range(args.repeats):
        for name, fn in (("one by one", one_by_one), ("batched", batched)):
            t0 = time.perf_counter()
            fitted[name] = fn()
            times[name].append(time.perf_counter() - t0)
    a, b = (statistics.median(times[n]) for n in ("one by one", "batched"))
    alone = [p.score(h) for p, h in zip(fitted["one by one"], held, strict=True)]
    together = [q.score(h) for q, h in zip(fitted["batched"], held, strict=True)]
    diff = max(float(np.max(np.abs(a_s - b_s) / np.abs(a_s))) for a_s, b_s in zip(alone, together, strict=True))
    print(f"{args.groups} leave-one-topic-out autoencoders ({args.rows} rows x {args.steps} steps): one by one "
          f"{a:.2f} s, batched {b:.2f} s (median of {args.repeats}): {a / b:.1f}x; largest relative score "
          f"difference {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
