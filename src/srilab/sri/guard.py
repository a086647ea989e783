"""The SRI guard: an anomaly detector fitted on SRI signals of *benign* generations only.

An SRI signal is a float array ``[S]`` with values in ``[0, 1]`` (one value per step, near 1
compliance-like, near 0 refusal-like); a batch is ``[N, S]``. With ``representation="log_ratio"`` or
``"distances"`` the guard takes those features instead (:mod:`srilab.sri.representation`: the signal
before its sigmoid ``[N, S]``, or both log distances ``[N, 2S]``; any finite values), and with
``scaling="robust"`` it scales each column by its benign median and IQR before the detector.

The guard never sees a jailbreak while fitting: it learns what benign trajectories look like
and flags the ones that do not.

The detectors and their registry live in :mod:`srilab.sri.detectors` (``srilab list detectors``).

:class:`SRIGuard` splits the benign rows deterministically, fits the detector on one part and sets
``threshold`` to the ``quantile`` quantile of the held-out benign scores; ``predict`` flags
``score > threshold``. Given calibration rows, the threshold is set on them instead; given also the *topic
group* of every row, it is set on topics the detector has not seen (``threshold_rule="topic_heldout"``, see
:meth:`SRIGuard.fit`): the FPR a deployed guard meets is on requests of new topics, and a threshold set on
scores of the fit's own topics underestimates it.

Persistence uses no pickle: ``guard.safetensors`` holds the autoencoder weights (or the training matrix of an
sklearn detector, refitted deterministically on load) and ``guard.json`` the metadata, including the ``key``
(model, sampler, layer, ...) the guard was fitted for and the threshold rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from srilab.errors import SrilabError
from srilab.sri.detectors import DETECTORS, Detector, fit_detectors, make_detector
from srilab.sri.representation import REPRESENTATIONS, RobustScaler

__all__ = ["SRIGuard", "conformal_quantile"]

GUARD_JSON = "guard.json"
GUARD_TENSORS = "guard.safetensors"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------------


def _as_signals(
    signals: Any, name: str, expected_steps: int | None = None, allow_1d: bool = False, bounded: bool = True
) -> np.ndarray:
    """Return ``signals`` as a float64 ``[N, S]`` array with finite values (in ``[0, 1]`` when ``bounded``)."""
    try:
        arr = np.asarray(signals, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SrilabError(f"{name} must be a numeric array of shape [N, S] ({exc}); pass SRI signals") from None
    if allow_1d and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise SrilabError(
            f"{name} must have shape [N, S] (one row per generation) but has shape {arr.shape}; "
            "stack the SRI signals into a 2-D array"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SrilabError(f"{name} is empty (shape {arr.shape}); pass at least one signal with at least one step")
    nan_rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if nan_rows.size:
        raise SrilabError(
            f"{name} contains NaN or infinite values in {nan_rows.size} row(s) "
            f"(first: row {int(nan_rows[0])}); "
            "drop those generations or recompute their SRI signal"
        )
    if bounded and (arr.min() < 0.0 or arr.max() > 1.0):
        raise SrilabError(
            f"{name} has values outside [0, 1] (min {arr.min():.4g}, max {arr.max():.4g}); "
            "pass SRI signals (sigmoid outputs), not raw distances, or set representation='log_ratio'"
        )
    if expected_steps is not None and arr.shape[1] != expected_steps:
        raise SrilabError(
            f"{name} has S={arr.shape[1]} steps but the guard was fitted on S={expected_steps}; "
            "use signals from the same sampler configuration and representation or refit the guard"
        )
    return arr


def conformal_quantile(scores: Any, quantile: float) -> float:
    """The split-conformal threshold: the ``ceil((n + 1) * quantile)``-th smallest of ``n`` exchangeable benign
    scores (the largest when that rank exceeds ``n``): a new score exchangeable with them exceeds it with
    probability at most ``1 - quantile`` whenever that rank is at most ``n`` (Vovk et al., 2005)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.size == 0 or not np.isfinite(s).all():
        raise SrilabError(f"conformal_quantile needs finite scores, got {s.size} value(s) with non-finite ones")
    rank = int(np.ceil((s.size + 1) * float(quantile)))
    return float(s[min(max(rank, 1), s.size) - 1])


# --------------------------------------------------------------------------------------------------
# the guard
# --------------------------------------------------------------------------------------------------


def _json_normalise(value: Any, name: str) -> Any:
    """Round-trip through JSON (tuples -> lists, ...) so saved and expected keys compare equal."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise SrilabError(
            f"{name} must be JSON-serialisable ({exc}); use plain str/int/float/list/dict values"
        ) from None


def _key_mismatch(saved: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """Describe the fields where ``saved`` and ``expected`` differ, or None when they agree."""
    fields = sorted(k for k in set(saved) | set(expected) if saved.get(k, ...) != expected.get(k, ...))
    if not fields:
        return None

    def show(d: dict[str, Any]) -> str:
        return ", ".join(f"{f}={json.dumps(d[f])}" if f in d else f"{f}=<missing>" for f in fields)

    return f"guard was fitted for {show(saved)} but is used with {show(expected)}"


class SRIGuard:
    """Benign-only SRI guard: a detector plus a threshold calibrated on held-out benign signals.

    Args:
        detector: ``"autoencoder"`` (default), ``"mahalanobis"``, ``"knn"`` or ``"isolation_forest"``.
        quantile: the threshold is this quantile of held-out benign scores (expected benign FPR is
            about ``1 - quantile``).
        seed: seeds the benign split and the detector.
        key: what the guard is fitted for (model, sampler config, layer, pooling, data hash, ...);
            saved with the guard and checked by :meth:`load`.
        options: detector options (e.g. ``{"k": 10}`` for knn, ``{"epochs": 500}`` for the autoencoder).
        representation: what the rows are: ``"sri"`` (the paper's s_t, default), ``"log_ratio"`` or
            ``"distances"`` (see :mod:`srilab.sri.representation`); saved and checked on load.
        scaling: ``"none"`` (default: the rows go to the detector as they are) or ``"robust"`` (per-column
            median / IQR scaling fitted on the benign fit rows, floored at ``scaling_floor`` times the median
            column scale).
    """

    def __init__(
        self,
        detector: str = "autoencoder",
        quantile: float = 0.99,
        seed: int = 0,
        key: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        representation: str = "sri",
        scaling: str = "none",
        scaling_floor: float = 0.1,
    ) -> None:
        DETECTORS.entry(detector)  # an unknown name is one error listing the detectors
        if representation not in REPRESENTATIONS:
            raise SrilabError(
                f"unknown SRI representation {representation!r}: use one of {', '.join(REPRESENTATIONS)}"
            )
        if scaling not in ("none", "robust"):
            raise SrilabError(f"unknown guard scaling {scaling!r}: use 'none' or 'robust'")
        if not (isinstance(scaling_floor, (int, float)) and float(scaling_floor) >= 0):
            raise SrilabError(f"scaling_floor must be a number >= 0, got {scaling_floor!r}")
        if not (isinstance(quantile, (int, float)) and 0.0 < float(quantile) < 1.0):
            raise SrilabError(f"quantile must be in (0, 1), got {quantile!r}; use e.g. quantile=0.99")
        if key is not None and not isinstance(key, dict):
            raise SrilabError(f"key must be a dict, got {type(key).__name__}; pass e.g. {{'model': ..., 'steps': ...}}")
        self.detector_name = detector
        self.representation = representation
        self.scaling = scaling
        self.scaling_floor = float(scaling_floor)
        self._scaler: RobustScaler | None = None
        self.quantile = float(quantile)
        self.seed = int(seed)
        self.key: dict[str, Any] = _json_normalise(key or {}, "key")
        self.options: dict[str, Any] = _json_normalise(options or {}, "options")
        self.threshold: float | None = None
        self.steps: int | None = None
        self.n_fit: int | None = None
        self.n_holdout: int | None = None
        self._detector: Detector | None = None
        self.holdout_index: np.ndarray | None = None
        self.threshold_rule: str | None = None  # "holdout", "calibration" or "topic_heldout" (see fit)
        self.heldout_scores: np.ndarray | None = None

    # -- fitting and scoring ------------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        """True once :meth:`fit` or :meth:`load` has set a detector and a threshold."""
        return self._detector is not None and self.threshold is not None

    def fit(
        self, benign_signals: Any, holdout_fraction: float = 0.3, *, calibration: Any = None,
        groups: tuple[Any, Any] | None = None,
    ) -> SRIGuard:
        """Fit on benign signals ``[N, S]``.

        With ``calibration`` (benign signals of *other* items, e.g. a study's ``calibration`` role): the
        detector is fitted on all of ``benign_signals`` and the threshold is the ``quantile`` of the
        calibration scores (``threshold_rule="calibration"``, the paper's). Without: the detector on one
        part of ``benign_signals``, the threshold on the held-out rest (a permutation drawn from
        ``np.random.default_rng(seed)``; ``"holdout"``).

        With ``calibration`` and ``groups`` = ``(topic group of each benign row, of each calibration row)``
        (``"topic_heldout"``): every row of both is scored by a detector fitted on the ``benign_signals``
        rows of the *other* groups (leave one topic group out), and the threshold is the split-conformal
        quantile of those out-of-topic scores, the ``ceil((n + 1) * quantile)``-th smallest of ``n`` (the
        largest when that rank exceeds ``n``). The scores stay in ``heldout_scores`` (benign rows first;
        NaN for the rows of a group whose leaving out leaves fewer than 2 benign rows; not saved). The
        detector that scores is still the one fitted on all of ``benign_signals``.
        """
        bounded = self.representation == "sri"
        X = _as_signals(benign_signals, "benign_signals", bounded=bounded)
        self.heldout_scores = None
        if groups is not None and calibration is None:
            raise SrilabError("groups set the threshold on topics the detector has not seen: pass calibration too")
        if calibration is not None:
            C = _as_signals(calibration, "calibration", expected_steps=X.shape[1], bounded=bounded)
            if X.shape[0] < 2:
                raise SrilabError(f"benign_signals has {X.shape[0]} row(s); the guard needs at least 2 to fit")
            self._scaler, self._detector = self._fit_detector(X)
            if groups is None:
                self.threshold = float(np.quantile(self._detector.score(self._scale(C)), self.quantile))
                self.threshold_rule = "calibration"
            else:
                self.heldout_scores = self._topic_heldout_scores(X, C, groups)
                scored = self.heldout_scores[np.isfinite(self.heldout_scores)]
                self.threshold = conformal_quantile(scored, self.quantile)
                self.threshold_rule = "topic_heldout"
            self.steps = int(X.shape[1])
            self.n_fit, self.n_holdout = int(X.shape[0]), int(C.shape[0])
            self.holdout_index = None
            return self
        if not (isinstance(holdout_fraction, (int, float)) and 0.0 < float(holdout_fraction) < 1.0):
            raise SrilabError(
                f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}; use e.g. holdout_fraction=0.3"
            )
        n = X.shape[0]
        n_hold = int(round(n * float(holdout_fraction)))
        n_hold = min(max(n_hold, 1), n - 2)
        if n < 3 or n_hold < 1:
            raise SrilabError(
                f"benign_signals has only {n} row(s); the guard needs at least 3 (better: hundreds) "
                "benign generations to fit and calibrate"
            )
        order = np.random.default_rng(self.seed).permutation(n)
        hold_idx, fit_idx = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        self._scaler, self._detector = self._fit_detector(X[fit_idx])
        held_scores = self._detector.score(self._scale(X[hold_idx]))
        self.threshold = float(np.quantile(held_scores, self.quantile))
        self.threshold_rule = "holdout"
        self.steps = int(X.shape[1])
        self.n_fit, self.n_holdout = int(fit_idx.size), int(hold_idx.size)
        self.holdout_index = hold_idx  # rows of ``benign_signals`` that calibrated the threshold (not saved)
        return self

    def _fit_scaler(self, X: np.ndarray) -> tuple[RobustScaler | None, np.ndarray]:
        """A scaler fitted on ``X`` (when ``scaling="robust"``, else None) and ``X`` as it scales it."""
        scaler = RobustScaler(self.scaling_floor).fit(X) if self.scaling == "robust" else None
        return scaler, (scaler.transform(X) if scaler is not None else X)

    def _fit_detector(self, X: np.ndarray) -> tuple[RobustScaler | None, Detector]:
        """A scaler (when ``scaling="robust"``) and a detector fitted on ``X``; ``self`` is not touched."""
        scaler, Z = self._fit_scaler(X)
        return scaler, make_detector(self.detector_name, self.seed, **self.options).fit(Z)

    def _topic_heldout_scores(self, X: np.ndarray, C: np.ndarray, groups: tuple[Any, Any]) -> np.ndarray:
        """Every row of ``X`` then ``C`` scored by a detector fitted on the ``X`` rows of the other groups (NaN where
        those are fewer than 2)."""
        try:
            gx, gc = (np.asarray([str(g) for g in part], dtype=object) for part in groups)
        except (TypeError, ValueError):
            raise SrilabError("groups must be a pair (topic group per benign row, per calibration row)") from None
        if len(gx) != len(X) or len(gc) != len(C):
            raise SrilabError(
                f"groups has {len(gx)} + {len(gc)} labels for {len(X)} benign + {len(C)} calibration rows; "
                "give one topic group per row"
            )
        names = sorted(set(gx) | set(gc))
        if len(names) < 2:
            raise SrilabError(
                f"the benign rows form {len(names)} topic group(s): a threshold on unseen topics needs at least 2 "
                "(label rows by topic, or fit without groups)"
            )
        rows, labels = np.concatenate([X, C]), np.concatenate([gx, gc])
        out = np.full(len(rows), np.nan)
        # the group holds (nearly) every benign row: its rows get no out-of-topic score
        left_out = [g for g in names if int((gx != g).sum()) >= 2]
        scaled = [self._fit_scaler(X[gx != g]) for g in left_out]
        dets = fit_detectors(self.detector_name, [Z for _, Z in scaled], self.seed, **self.options)  # batched
        for g, (scaler, _), det in zip(left_out, scaled, dets, strict=True):
            held = rows[labels == g]
            out[labels == g] = det.score(scaler.transform(held) if scaler is not None else held)
        if np.isfinite(out).sum() < 2:
            raise SrilabError(
                f"no topic group of {', '.join(map(str, names))} can be left out with 2 or more benign rows of the "
                "others to fit on: a threshold on unseen topics needs benign rows spread over topic groups"
            )
        return out

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return self._scaler.transform(X) if self._scaler is not None else X

    @property
    def detector(self) -> Detector:
        """The fitted detector (it sees the rows after the guard's scaling, see :meth:`transform`)."""
        return self._require_fitted()

    def transform(self, signals: Any) -> np.ndarray:
        """The rows as the detector sees them (checked, then scaled when ``scaling="robust"``)."""
        self._require_fitted()
        X = _as_signals(
            signals, "signals", expected_steps=self.steps, allow_1d=True, bounded=self.representation == "sri"
        )
        return self._scale(X)

    def _require_fitted(self) -> Detector:
        if self._detector is None or self.threshold is None:
            raise SrilabError("the SRI guard is not fitted; call SRIGuard.fit(benign_signals) or SRIGuard.load(dir)")
        return self._detector

    def score(self, signals: Any) -> np.ndarray:
        """Anomaly score per signal (``[N, S]`` or one ``[S]`` signal); higher = more anomalous."""
        detector = self._require_fitted()
        return detector.score(self.transform(signals))

    def predict(self, signals: Any) -> np.ndarray:
        """Boolean ``[N]``: True where the signal is flagged as a jailbreak / harmful generation."""
        scores = self.score(signals)
        assert self.threshold is not None
        return scores > self.threshold

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``guard.safetensors`` and ``guard.json`` into ``directory`` (created if needed)."""
        detector = self._require_fitted()
        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
            state = dict(detector.state())
            if self._scaler is not None:
                state.update(self._scaler.state())
            tensors = {k: np.ascontiguousarray(v) for k, v in state.items()}
            save_file(tensors, str(out / GUARD_TENSORS))
            meta = {
                "format_version": FORMAT_VERSION,
                "detector": self.detector_name,
                "quantile": self.quantile,
                "threshold": self.threshold,
                "seed": self.seed,
                "steps": self.steps,
                "n_fit": self.n_fit,
                "n_holdout": self.n_holdout,
                "options": self.options,
                "key": self.key,
                "representation": self.representation,
                "scaling": self.scaling,
                "scaling_floor": self.scaling_floor,
                "threshold_rule": self.threshold_rule,
            }
            (out / GUARD_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            raise SrilabError(
                f"cannot write the guard to {out} ({exc.strerror}); choose a writable directory"
            ) from None
        return out

    @classmethod
    def load(
        cls, directory: str | Path, expected_key: dict[str, Any] | None = None, representation: str | None = None
    ) -> SRIGuard:
        """Load a guard saved by :meth:`save`; if ``expected_key`` is given it must equal the saved key, and if
        ``representation`` is given it must be the saved one (a guard saved before representations existed
        is an ``"sri"`` guard)."""
        src = Path(directory)
        meta_path, tensor_path = src / GUARD_JSON, src / GUARD_TENSORS
        for path in (meta_path, tensor_path):
            if not path.is_file():
                raise SrilabError(f"no SRI guard at {src}: {path.name} is missing; fit and save a guard there first")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            detector_name = str(meta["detector"])
            steps = int(meta["steps"])
            threshold = float(meta["threshold"])
            guard = cls(
                detector=detector_name,
                quantile=float(meta["quantile"]),
                seed=int(meta["seed"]),
                key=meta.get("key") or {},
                options=meta.get("options") or {},
                representation=str(meta.get("representation", "sri")),
                scaling=str(meta.get("scaling", "none")),
                scaling_floor=float(meta.get("scaling_floor", 0.1)),
            )
        except (ValueError, KeyError, TypeError, SrilabError) as exc:
            raise SrilabError(
                f"{meta_path} is not a valid guard.json ({exc!r}); refit and save the guard again"
            ) from None
        if representation is not None and representation != guard.representation:
            raise SrilabError(
                f"guard at {src} was fitted on the {guard.representation!r} representation but is used with "
                f"{representation!r}; refit the guard for this representation or load the matching one"
            )
        if expected_key is not None:
            if not isinstance(expected_key, dict):
                raise SrilabError(f"expected_key must be a dict, got {type(expected_key).__name__}")
            mismatch = _key_mismatch(guard.key, _json_normalise(expected_key, "expected_key"))
            if mismatch:
                raise SrilabError(f"{mismatch}; refit the guard for this configuration or load the matching one")
        try:
            state = load_file(str(tensor_path))
        except Exception as exc:  # safetensors raises its own error types
            raise SrilabError(f"cannot read {tensor_path} ({exc}); refit and save the guard again") from None
        try:
            if guard.scaling == "robust":
                guard._scaler = RobustScaler.from_state(state, guard.scaling_floor)
            state = {k: v for k, v in state.items() if not k.startswith("scaler.")}
            guard._detector = DETECTORS.get(detector_name).from_state(state, guard.seed, guard.options)
            guard._detector.score(np.full((1, int(steps)), 0.5))  # weights of another shape fail here, not later
        except (ValueError, KeyError, RuntimeError, IndexError) as exc:  # shapes or names from another fit
            raise SrilabError(
                f"{tensor_path} does not match {meta_path.name} ({type(exc).__name__}: {str(exc).splitlines()[0]}): "
                "the weights and the metadata come from different fits; refit and save the guard again"
            ) from None
        guard.threshold = threshold
        guard.steps = steps
        guard.n_fit = meta.get("n_fit")
        guard.n_holdout = meta.get("n_holdout")
        guard.threshold_rule = meta.get("threshold_rule")
        return guard
