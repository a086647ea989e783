"""Agreement between binary judges: percent agreement, Cohen's kappa for every pair, Fleiss' kappa overall.

Labels are booleans (True = harmful / refused / positive), one vector per judge, all of the same length and
aligned item by item. ``0``/``1`` integers, numpy booleans and :class:`~srilab.judges.classifiers.HarmVerdict`
objects (their ``harmful`` field) are accepted too.

Degenerate cases
----------------
Cohen's kappa is ``(p_o - p_e) / (1 - p_e)`` with chance agreement ``p_e = p_a p_b + (1 - p_a)(1 - p_b)``.
When both judges give the *same constant* label (all True or all False) ``p_e = 1`` and kappa is 0/0:
undefined, reported as ``None`` (scikit-learn returns NaN there). When both are constant but *opposite*
``p_e = 0`` and kappa is 0.0 (as in scikit-learn); when only one is constant kappa is defined (it is 0.0
whenever ``p_o = p_e``). Fleiss' kappa is ``None`` with fewer than two judges or when every label is the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from numbers import Integral

import numpy as np

from srilab.errors import SrilabError

__all__ = ["agreement", "cohen_kappa", "fleiss_kappa"]


def _as_bools(name: str, values: Sequence) -> list[bool]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise SrilabError(f"labels of judge {name!r} must be a sequence of booleans, got {type(values).__name__}")
    out: list[bool] = []
    for i, v in enumerate(values):
        v = getattr(v, "harmful", v)  # a HarmVerdict counts as its verdict
        if isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, Integral) and int(v) in (0, 1):
            out.append(bool(int(v)))
        else:
            raise SrilabError(
                f"label {i} of judge {name!r} is {v!r}: labels must be booleans (or 0/1); map other values first"
            )
    return out


def _check(labels: Mapping[str, Sequence]) -> dict[str, list[bool]]:
    if not isinstance(labels, Mapping) or not labels:
        raise SrilabError("agreement expects a non-empty dict {judge name: labels}")
    vectors = {str(name): _as_bools(str(name), values) for name, values in labels.items()}
    lengths = {name: len(v) for name, v in vectors.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise SrilabError(f"judges labelled different numbers of items ({detail}); align the label vectors first")
    if next(iter(lengths.values())) == 0:
        raise SrilabError("the label vectors are empty: agreement needs at least one labelled item")
    return vectors


def _pair_counts(a: Sequence[bool], b: Sequence[bool]) -> dict[str, int]:
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    return {"both": both, "a_only": a_only, "b_only": b_only, "neither": len(a) - both - a_only - b_only}


def _kappa_from_counts(c: Mapping[str, int]) -> float | None:
    n = c["both"] + c["a_only"] + c["b_only"] + c["neither"]
    a_pos, b_pos = c["both"] + c["a_only"], c["both"] + c["b_only"]
    if (a_pos == n and b_pos == n) or (a_pos == 0 and b_pos == 0):
        return None  # same constant label: chance agreement 1, kappa 0/0
    p_o = (c["both"] + c["neither"]) / n
    p_e = (a_pos * b_pos + (n - a_pos) * (n - b_pos)) / (n * n)
    return (p_o - p_e) / (1.0 - p_e)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two aligned boolean label vectors (None when both are the same constant)."""
    vectors = _check({"a": a, "b": b})
    return _kappa_from_counts(_pair_counts(vectors["a"], vectors["b"]))


def fleiss_kappa(labels: Mapping[str, Sequence[bool]]) -> float | None:
    """Fleiss' kappa of two or more judges on the same items, two categories (None when undefined).

    ``P_i`` is the agreeing-pair fraction of item ``i``; ``P_e`` the sum of squared category shares over all
    labels; kappa = ``(mean P_i - P_e) / (1 - P_e)``. With two judges this is Scott's pi.
    """
    vectors = _check(labels)
    m = len(vectors)
    if m < 2:
        return None
    n = len(next(iter(vectors.values())))
    positives = [sum(v[i] for v in vectors.values()) for i in range(n)]
    p_bar = sum(k * (k - 1) + (m - k) * (m - k - 1) for k in positives) / (n * m * (m - 1))
    share = sum(positives) / (n * m)
    if share in (0.0, 1.0):
        return None  # every label the same: chance agreement 1, kappa 0/0
    p_e = share**2 + (1.0 - share) ** 2
    return (p_bar - p_e) / (1.0 - p_e)


def agreement(labels: Mapping[str, Sequence[bool]]) -> dict:
    """Agreement figures for judges' boolean labels on the same items.

    Args:
        labels: ``{judge name: labels}``; every vector must have the same (non-zero) length.

    Returns:
        A JSON-ready dict::

            {
              "n_items": int,
              "judges": [name, ...],
              "positive_rate": {name: fraction of True},
              "pairs": [
                {"a": name, "b": name, "n": int,
                 "agreement": fraction of items with the same label (0..1; x100 for percent),
                 "kappa": Cohen's kappa or None (both judges the same constant label),
                 "counts": {"both": a&b, "a_only": a&~b, "b_only": ~a&b, "neither": ~a&~b}},
                ...  # every unordered pair, in the order the judges were given
              ],
              "fleiss_kappa": Fleiss' kappa over all judges, or None (fewer than 2 judges, or undefined),
            }

    Raises:
        SrilabError: vectors of different lengths, empty vectors, or non-boolean labels.
    """
    vectors = _check(labels)
    n = len(next(iter(vectors.values())))
    pairs = []
    for a, b in combinations(vectors, 2):
        counts = _pair_counts(vectors[a], vectors[b])
        pairs.append(
            {
                "a": a,
                "b": b,
                "n": n,
                "agreement": (counts["both"] + counts["neither"]) / n,
                "kappa": _kappa_from_counts(counts),
                "counts": counts,
            }
        )
    return {
        "n_items": n,
        "judges": list(vectors),
        "positive_rate": {name: sum(v) / n for name, v in vectors.items()},
        "pairs": pairs,
        "fleiss_kappa": fleiss_kappa(vectors),
    }
