"""Train the shipped ``refusal_probe`` heads from the shared human-labelled answers, reproducibly.

``python -m srilab.judges.train_refusal`` reads the four models' labelled answers
(:mod:`srilab.judges.refusal_data`: XSTest v2's GPT-4, Llama-2-70b-chat and Mistral-7B-Instruct answers and the
project's SmolLM2 set), their features (:mod:`srilab.judges.probe_features`, cached on disk), runs the selection
procedure of :mod:`srilab.judges.lomo` on all four models (inner leave-one-model-out picks the blocks, poolings,
C and both thresholds) and writes the heads to ``srilab/judges/refusal_probe.npz``. The fit is deterministic
(lbfgs, no randomness), so the same data give the same file; ``--check`` retrains and compares with the shipped
file instead of writing. The file's ``meta`` records the choice, every candidate's inner score and a SHA-256
fingerprint of the training answers.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srilab.errors import SrilabError

__all__ = ["TOLERANCE", "compare", "train"]

#: How far a retrained coefficient may sit from the shipped one (BLAS summation order may differ by machine).
TOLERANCE = 1e-4


def train(answers, feats: dict[str, np.ndarray], grid=None, log: bool = False):
    """The heads chosen and fitted on every model of ``answers`` (a ``refusal_probe.ProbeWeights``)."""
    from srilab.judges.lomo import GRID, choose
    from srilab.judges.refusal_data import fingerprint
    from srilab.judges.refusal_probe import ProbeWeights

    models = [a.model for a in answers]
    tuning = list(dict.fromkeys(models))
    choice = choose(feats, [a.label for a in answers], models, tuning, grid or GRID, log=log)
    meta: dict[str, Any] = {
        **choice.record(),
        "fingerprint": fingerprint(answers),
        "n": len(answers),
        "made_by": "python -m srilab.judges.train_refusal",
    }
    return ProbeWeights(choice.config.feature_keys(), choice.coef_full, choice.b_full, choice.coef_any, choice.b_any,
                        choice.t_full, choice.t_any, meta)


def compare(a, b, tolerance: float = TOLERANCE) -> list[str]:
    """What differs between two sets of heads (empty: the same, within ``tolerance``)."""
    problems = []
    if a.keys != b.keys:
        problems.append(f"features {a.keys} vs {b.keys}")
    for what in ("coef_full", "coef_any"):
        x, y = getattr(a, what), getattr(b, what)
        if x.shape != y.shape or not np.allclose(x, y, atol=tolerance, rtol=1e-3):
            problems.append(what)
    for what in ("b_full", "b_any", "t_full", "t_any"):
        if abs(getattr(a, what) - getattr(b, what)) > 10 * tolerance:
            problems.append(f"{what} {getattr(a, what)} vs {getattr(b, what)}")
    if a.meta.get("fingerprint") != b.meta.get("fingerprint"):
        problems.append("training data fingerprint")
    return problems


def main(argv: Sequence[str] | None = None) -> None:
    from srilab.judges.lomo import feature_table
    from srilab.judges.refusal_data import MODELS, load_all
    from srilab.judges.refusal_probe import WEIGHTS_PATH, load_weights, save_weights

    parser = argparse.ArgumentParser(description="Train the refusal_probe judge's heads from the labelled answers")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    parser.add_argument("--check", action="store_true", help="retrain and compare with --out instead of writing")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    answers = load_all(MODELS)
    weights = train(answers, feature_table(answers, args.cache), log=args.verbose)
    cfg = weights.meta["config"]
    print(f"chosen on {', '.join(MODELS)}: blocks {cfg['blocks']}, poolings {cfg['pools']}, C {cfg['C']}, "
          f"t_full {weights.t_full:.4f}, t_any {weights.t_any:.4f}")
    if args.check:
        problems = compare(weights, load_weights(args.out))
        if problems:
            raise SrilabError(f"retrained heads differ from {args.out}: {'; '.join(problems)}")
        print(f"{args.out} reproduces")
        return
    save_weights(args.out, weights)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
