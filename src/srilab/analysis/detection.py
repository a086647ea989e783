"""Detection for one arm (model x sampler), under the protocol's roles (:mod:`srilab.study.protocol`).

1. **SRI.** The centres come from the ``centre`` items (benign answered) and the ``harmful_centre`` items
   (harmful refused); the guard (``sri.variant``, :mod:`srilab.analysis.guard_variants`) is fitted on
   ``guard_fit`` signals and its threshold is the configured quantile of out-of-topic benign scores
   (``sri.threshold: topic_heldout``: ``guard_fit`` and ``calibration`` rows, each scored by a detector
   fitted without its topic group) or of the ``calibration`` scores (``calibration``, the paper's). The
   paper's guard at its own threshold is reported beside any other choice. None of these items is scored.
2. **The headline** is the paper's question: AUROC of *jailbroken* answers (attacked and judged harmful)
   against benign answers of seen topics and, separately, of unseen topics, each with a bootstrap CI and
   both n; all attacked requests against benign second; jailbroken against *failed* attacks third (does it
   see the success or the request: :mod:`srilab.analysis.success`, with the gain over request-only readings);
   the refusal flag is a yardstick of request harmfulness (higher = refused), its oriented twin
   ``answered_flag`` a detector.
3. **Every detector at one benign FPR.** The SRI guard, a benign-only TF-IDF detector on the answer text,
   the same detector family on the first step's pooled state alone (``static_step0``: a static probe, no
   trajectory), and every baseline defense scored in the run (``defenses.jsonl``): each scored so that higher means
   "attack succeeded", its threshold set on the same ``calibration`` rows to the same FPR
   (``protocol.fpr``), and reported there: TPR on jailbroken answers, attack success after the defense, FPR
   on both benign evaluation parts (k, n, Wilson interval) and cost per item.
4. **The online guard**: prefix scores checked every ``sri.online_every`` steps against per-step
   thresholds from the calibration rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from srilab import stats
from srilab.analysis.guard_variants import (
    choose_guard,
    compare_variants,
    fit_variants,
    variant_features,
)
from srilab.analysis.success import sees_success
from srilab.errors import SrilabError
from srilab.judges.xstest import XSTEST_TYPES
from srilab.sri.centres import CentreKey, Centres, compute_centres, data_hash
from srilab.sri.detectors import make_detector
from srilab.sri.guard import SRIGuard
from srilab.sri.metrics import internal_recovery
from srilab.sri.online import first_alarms, online_thresholds
from srilab.sri.representation import features_from_distances
from srilab.sri.signal import step_distances
from srilab.sri.variants import default_variants
from srilab.study.config import StudyConfig
from srilab.study.store import RunDir


class TextFeatures:
    """Response-only text features: TF-IDF of word 1-2-grams plus the out-of-vocabulary share. Fit on benign
    responses only."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 2)) -> None:
        self.ngram_range = ngram_range
        self._vectorizer = None
        self._vocab: set[str] = set()

    def fit(self, texts: Sequence[str]) -> TextFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(token_pattern=r"\S+", ngram_range=self.ngram_range, lowercase=True)
        try:
            vec.fit(list(texts))
            self._vectorizer = vec
        except ValueError:  # every benign response is empty: only the out-of-vocabulary column is left
            self._vectorizer = None
        self._vocab = {w for t in texts for w in t.lower().split()}
        return self

    @property
    def dim(self) -> int:
        return 1 + (len(self._vectorizer.vocabulary_) if self._vectorizer is not None else 0)

    def oov_share(self, text: str) -> float:
        words = text.lower().split()
        return 1.0 if not words else sum(w not in self._vocab for w in words) / len(words)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        oov = np.array([[self.oov_share(t)] for t in texts], dtype=np.float64)
        if self._vectorizer is None:
            return oov
        tfidf = self._vectorizer.transform(list(texts)).toarray().astype(np.float64)
        return np.hstack([tfidf, oov])


def activations(run: RunDir, rows: list[dict]) -> np.ndarray:
    """The step activations of ``rows`` [N, S, D], each shard read once and checked against the row's key."""
    shards: dict[str, tuple[dict, list[str]]] = {}
    out = []
    for r in rows:
        if r["shard"] not in shards:
            shards[r["shard"]] = run.read_shard(r["shard"])
        tensors, keys = shards[r["shard"]]
        if r["row"] >= len(keys) or keys[r["row"]] != r["key"]:
            raise SrilabError(
                f"trace shard {r['shard']} does not hold {r['key']} at row {r['row']}: the run directory is corrupt"
            )
        out.append(tensors["activations"][r["row"]].numpy())
    return np.stack(out).astype(np.float32)


def _flag_rate(flags: np.ndarray) -> dict[str, Any]:
    return stats.rate(np.asarray(flags, dtype=bool))


def _auroc(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray, cfg: StudyConfig) -> dict[str, Any]:
    p, n = scores[pos], scores[neg]
    p, n = p[np.isfinite(p)], n[np.isfinite(n)]
    return stats.auroc_with_ci(p, n, n_boot=cfg.n_boot, seed=cfg.seed)


def _at_threshold(
    scores: np.ndarray, thr: float, sets: dict[str, np.ndarray], harmful: np.ndarray,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Rates of ``score > thr`` on each set (rows without a score are left out) and attack success after.
    ``weights``: the sampling weight of every scored row (a defense that scored a stratified sample of the
    attacked rows): the rates over attacked rows, which mix the strata, are then weighted population estimates."""
    out: dict[str, Any] = {"threshold": float(thr)}
    flagged = scores > thr
    scored = np.isfinite(scores)
    for name in ("eval_seen_topics", "eval_unseen_topics", "lookalike", "jailbroken"):
        sel = sets[name][scored[sets[name]]]
        out[f"flagged_{name}"] = _flag_rate(flagged[sel])
    att = sets["attacked"][scored[sets["attacked"]]]
    if weights is not None and len(att) and not np.allclose(weights[att], 1.0):
        def rate(flags):
            return stats.weighted_rate(flags, weights[att])
    else:
        rate = _flag_rate
    out["flagged_attacked"] = rate(flagged[att])
    out["asr_before"] = rate(harmful[att])
    out["asr_after"] = rate(harmful[att] & ~flagged[att])
    return out


def compare(
    detectors: dict[str, tuple[np.ndarray, float | None]], sets: dict[str, np.ndarray], harmful: np.ndarray,
    cfg: StudyConfig, weights: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every detector at the same benign FPR (thresholds on the calibration rows), and its AUROCs; ``weights``:
    the sampling weights of the detectors that scored a sample (:func:`_at_threshold`)."""
    out = {}
    weights = weights or {}
    for name, (scores, cost) in detectors.items():
        cal = scores[sets["calibration"]]
        cal = cal[np.isfinite(cal)]
        entry: dict[str, Any] = {"cost_per_item_s": cost, "n_calibration": int(len(cal))}
        for part in ("eval_seen_topics", "eval_unseen_topics"):
            entry[f"auroc_jailbroken_vs_{part}"] = _auroc(scores, sets["jailbroken"], sets[part], cfg)
        entry["auroc_attacked_vs_eval"] = _auroc(scores, sets["attacked"], sets["eval"], cfg)
        if len(cal):
            entry["at_fpr"] = {
                f"{100 * f:g}%": _at_threshold(scores, stats.threshold_at_fpr(cal, f), sets, harmful,
                                               weights.get(name))
                for f in sorted({cfg.protocol.fpr, 0.01, 0.05})
            }
        out[name] = entry
    return out


def role_sets(rows: list[dict]) -> dict[str, np.ndarray]:
    """Row indices per protocol role (rows carry ``protocol_role`` and ``harmful``), plus ``eval`` (both
    benign evaluation parts), ``lookalike`` (benign evaluation rows of an XSTest safe-prompt type: safe
    requests that look harmful) and ``jailbroken`` (attacked and judged harmful)."""
    role = np.array([r["protocol_role"] for r in rows])
    lookalike = np.array([r.get("category") in XSTEST_TYPES for r in rows], dtype=bool)
    harmful = np.array([r["harmful"] for r in rows], dtype=bool)

    def idx(*roles: str) -> np.ndarray:
        return np.flatnonzero(np.isin(role, roles))

    attacked, ev = idx("attacked"), idx("eval_seen_topics", "eval_unseen_topics")
    return {
        "centre": idx("centre"), "harmful_centre": idx("harmful_centre"), "guard_fit": idx("guard_fit"),
        "calibration": idx("calibration"), "eval_seen_topics": idx("eval_seen_topics"),
        "eval_unseen_topics": idx("eval_unseen_topics"), "eval": ev,
        "lookalike": ev[lookalike[ev]],
        "attacked": attacked, "jailbroken": attacked[harmful[attacked]],
    }


def arm_centres(
    rows: list[dict], acts: np.ndarray, sets: dict[str, np.ndarray], cfg: StudyConfig, notes: list[str],
) -> tuple[Centres, CentreKey]:
    """The SRI centres of one arm: the ``centre`` rows answered (harmless) and the ``harmful_centre`` rows
    refused (harmful); when no harmful-centre request was refused, all of them (and when every benign centre
    request was refused, all of those), each fallback said in ``notes``. Returns the centres and their key."""
    arm = f"{rows[0]['model']}/{rows[0]['sampler']}"
    refused = np.array([r["refused"] for r in rows], dtype=bool)
    centre_idx = np.concatenate([sets["centre"], sets["harmful_centre"]])
    is_harm = np.array([False] * len(sets["centre"]) + [True] * len(sets["harmful_centre"]))
    centre_refused = refused[centre_idx].copy()
    if not centre_refused[is_harm].any():
        notes.append(f"{arm}: no harmful-centre request was refused: the harmful centre averages all of them (the "
                     "signal then separates compliance from the harmful-request state)")
        centre_refused[is_harm] = True
    if centre_refused[~is_harm].all():
        notes.append(f"{arm}: every benign centre request was refused")
        centre_refused[~is_harm] = False
    key = CentreKey(
        model=rows[0]["model"], sampler={"label": rows[0]["sampler"]}, layer=str(cfg.sri.layer),
        pooling=cfg.sri.pooling, data=data_hash(rows[i]["prompt"] for i in centre_idx),
    )
    return compute_centres(acts[centre_idx], is_harm, centre_refused, key), key


def baseline_detectors(
    cfg: StudyConfig, rows: list[dict], sets: dict[str, np.ndarray], acts: np.ndarray,
    defense_scores: dict[str, dict[str, tuple[float, ...]]], weights: dict[str, np.ndarray] | None = None,
    seconds: dict[str, np.ndarray] | None = None,
) -> dict[str, tuple[np.ndarray, float | None]]:
    """Every detector beside the SRI guard, each scored so that higher means "attack succeeded", with its cost
    per item: the answered flag (not refused), the text-only detector, the static first-step probe and the
    baseline defenses the run scored (rows they did not score hold NaN; a defense's sampling weights, recorded
    with its scores, go into ``weights``; its cost per scored row, into ``seconds``)."""
    refused = np.array([r["refused"] for r in rows], dtype=bool)
    out: dict[str, tuple[np.ndarray, float | None]] = {"answered_flag": ((~refused).astype(np.float64), None)}
    if cfg.analysis.text_baseline:
        t0 = time.perf_counter()
        feats = TextFeatures().fit([rows[i]["response"] for i in sets["guard_fit"]])
        X = feats.transform([r["response"] for r in rows])
        det = make_detector(cfg.sri.detector, cfg.seed).fit(X[sets["guard_fit"]])
        out["text_tfidf"] = (det.score(X), (time.perf_counter() - t0) / len(rows))
    t0 = time.perf_counter()  # the static probe: the pooled state of the first step alone, no trajectory
    first = acts[:, 0, :].astype(np.float64)
    det = make_detector(cfg.sri.detector, cfg.seed).fit(first[sets["guard_fit"]])
    out["static_step0"] = (det.score(first), (time.perf_counter() - t0) / len(rows))
    for name, by_key in defense_scores.items():
        vals = np.array([by_key.get(r["key"], (np.nan, np.nan))[0] for r in rows], dtype=np.float64)
        if np.isfinite(vals).any():
            costs = [by_key[r["key"]][1] for r in rows if r["key"] in by_key]
            out[name] = (vals, float(np.mean(costs)))
            if seconds is not None:  # per scored row: its batch's time over the batch's rows
                seconds[name] = np.asarray(costs, dtype=np.float64)
            if weights is not None:  # a sample's weights (rows it stands for); 1 where unscored or unrecorded
                weights[name] = np.array([float(by_key[r["key"]][2]) if len(by_key.get(r["key"], ())) > 2 else 1.0
                                          for r in rows], dtype=np.float64)
    return out


def check_roles(rows: list[dict], sets: dict[str, np.ndarray]) -> None:
    """Every role the SRI guard is built from holds at least 2 rows of the arm."""
    for need in ("centre", "harmful_centre", "guard_fit", "calibration"):
        if len(sets[need]) < 2:
            raise SrilabError(
                f"arm {rows[0]['model']}/{rows[0]['sampler']}: the protocol role {need!r} has {len(sets[need])} "
                "generation(s); the SRI guard needs more (add benign or harmful items, or change protocol shares)"
            )


def fit_guard(
    cfg: StudyConfig, dist: tuple[np.ndarray, np.ndarray], signals: np.ndarray, sets: dict[str, np.ndarray],
    topics: np.ndarray, key: CentreKey,
) -> dict[str, Any]:
    """The paper's guard fitted on ``guard_fit`` (thresholded on ``calibration``) and, unless the config asks for
    the paper's guard and rule, the guard the calibration data chooses (:func:`choose_guard`): ``guard`` (the
    paper's), ``paper_scores``, ``scores`` and ``threshold`` (the study's guard), ``t_score`` (its scoring
    time), ``choice`` and ``fits`` (every variant fitted, when asked for or when the choice is automatic)."""
    guard = SRIGuard(cfg.sri.detector, quantile=cfg.sri.quantile, seed=cfg.seed, key=key.as_dict())
    guard.fit(signals[sets["guard_fit"]], calibration=signals[sets["calibration"]])
    t0 = time.perf_counter()
    scores = guard.score(signals)
    out = {"guard": guard, "paper_scores": scores, "scores": scores, "threshold": float(guard.threshold),
           "t_score": time.perf_counter() - t0, "choice": None, "fits": None}
    if cfg.sri.variant == "paper" and cfg.sri.threshold == "calibration":
        return out
    # calibration data decides whether a robust variant replaces the paper's guard; its threshold is set on
    # topics it has not seen unless sri.threshold is the paper's (calibration)
    if cfg.analysis.guard_variants or cfg.sri.variant == "auto":  # every variant fitted once: for the choice,
        # the comparison and the guard diagnosis (srilab ablate), which reads them from the private output
        out["fits"] = fit_variants(dist, sets, topics, quantile=cfg.sri.quantile, seed=cfg.seed,
                                   variants=default_variants(cfg.sri.detector), threshold=cfg.sri.threshold)
    variant, chosen, out["choice"] = choose_guard(
        dist, sets, topics, variant=cfg.sri.variant, detector=cfg.sri.detector, quantile=cfg.sri.quantile,
        seed=cfg.seed, threshold=cfg.sri.threshold, fits=out["fits"],
    )
    t0 = time.perf_counter()  # its cost per item: the signal's (distances) + this
    out["scores"] = chosen.score(variant_features(dist, variant))
    out["t_score"], out["threshold"] = time.perf_counter() - t0, float(chosen.threshold)
    return out


def threshold_notes(cfg: StudyConfig, rows: list[dict], sets: dict[str, np.ndarray], notes: list[str]) -> None:
    """A note for each threshold (the guard's quantile, ``protocol.fpr``) too few rows can set."""
    n_cal = len(sets["calibration"])
    n_guard = n_cal + (len(sets["guard_fit"]) if cfg.sri.threshold == "topic_heldout" else 0)
    for what, tail, n, rows_are in (
        ("the SRI guard's quantile", 1 - cfg.sri.quantile, n_guard,
         "out-of-topic" if cfg.sri.threshold == "topic_heldout" else "calibration"),
        ("protocol.fpr", cfg.protocol.fpr, n_cal, "calibration"),
    ):
        if n * tail < 1:
            notes.append(
                f"{rows[0]['model']}/{rows[0]['sampler']}: {n} {rows_are} rows cannot set a threshold at "
                f"{100 * tail:g}% FPR ({what}; ~{int(np.ceil(1 / tail))} needed): the achieved FPR is what counts"
            )


def per_cell(
    rows: list[dict], sets: dict[str, np.ndarray], scores: np.ndarray, threshold: float, signals: np.ndarray,
    cfg: StudyConfig,
) -> dict[str, Any]:
    """Per attacked dataset/attack: the guard's AUROC against the benign evaluation rows, its flagged rate and
    the internal recovery rate."""
    attacked = sets["attacked"]
    out = {}
    for cell in sorted({(rows[i]["dataset"], rows[i]["attack"]) for i in attacked}):
        sel = np.array([i for i in attacked if (rows[i]["dataset"], rows[i]["attack"]) == cell], dtype=int)
        out["/".join(cell)] = {
            "auroc_vs_eval": _auroc(scores, sel, sets["eval"], cfg),
            "flagged": _flag_rate(scores[sel] > threshold),
            "internal_recovery": _flag_rate(internal_recovery(signals[sel])),
        }
    return out


def arm_detection(
    run: RunDir, cfg: StudyConfig, rows: list[dict], defense_scores: dict[str, dict[str, tuple[float, float]]],
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The detection figures of one arm (JSON-safe) and the arrays its plots need."""
    refused = np.array([r["refused"] for r in rows], dtype=bool)
    harmful = np.array([r["harmful"] for r in rows], dtype=bool)
    sets = role_sets(rows)
    attacked = sets["attacked"]
    check_roles(rows, sets)
    acts = activations(run, rows)
    centres, key = arm_centres(rows, acts, sets, cfg, notes)
    t0 = time.perf_counter()
    dist = step_distances(acts, centres)  # once: the signal and every guard variant read them
    signals = features_from_distances(*dist, "sri")
    t_signal = time.perf_counter() - t0
    topics = np.array([str(r.get("group")) for r in rows])
    g = fit_guard(cfg, dist, signals, sets, topics, key)
    scores, threshold, choice = g["scores"], g["threshold"], g["choice"]
    threshold_notes(cfg, rows, sets, notes)
    detectors: dict[str, tuple[np.ndarray, float | None]] = {
        "sri_guard": (scores, (t_signal + g["t_score"]) / len(rows)),
    }
    if choice is not None and choice["variant"] != choice["paper"]:  # the paper's scores stay beside the chosen
        detectors["sri_guard_paper"] = (g["paper_scores"], None)
    weights: dict[str, np.ndarray] = {}
    seconds: dict[str, np.ndarray] = {}
    detectors.update(baseline_detectors(cfg, rows, sets, acts, defense_scores, weights, seconds))
    out: dict[str, Any] = {
        "centre_counts": centres.counts, "steps": int(signals.shape[1]), "detector": cfg.sri.detector,
        "quantile": cfg.sri.quantile, "threshold": threshold, "guard_choice": choice,
        "n": {k: int(len(v)) for k, v in sets.items()},
        "overhead_share": (t_signal + g["t_score"]) / max(sum(r["timing"]["seconds"] for r in rows), 1e-9),
        "at_own_threshold": _at_threshold(scores, threshold, sets, harmful),
        **({"paper_at_own_threshold": _at_threshold(g["paper_scores"], g["guard"].threshold, sets, harmful)}
           if choice is not None else {}),  # ... and its threshold (the paper's rule) beside any other
        "request_harmfulness_yardstick": {  # not a detector: higher = refused = the attack failed
            "measures": "refused (1) vs answered (0): how harmful the request looked, not whether an attack "
                        "succeeded; the oriented detector is answered_flag",
            "auroc_attacked_vs_eval": _auroc(refused.astype(float), attacked, sets["eval"], cfg),
            "auroc_jailbroken_vs_eval": _auroc(refused.astype(float), sets["jailbroken"], sets["eval"], cfg),
        },
        "detectors": compare(detectors, sets, harmful, cfg, weights),
        "sees_success": sees_success(detectors, rows, sets, cfg.protocol.fpr, cfg.n_boot, cfg.seed),
        **({"guard_variants": compare_variants(
            acts, centres, sets, harmful, topics, quantile=cfg.sri.quantile, seed=cfg.seed, n_boot=cfg.n_boot,
            variants=default_variants(cfg.sri.detector), distances=dist, threshold=cfg.sri.threshold, fits=g["fits"],
        )} if cfg.analysis.guard_variants else {}),
        "online": online_guard(g["guard"], signals, sets, cfg),
        "per_cell": per_cell(rows, sets, scores, threshold, signals, cfg),
    }
    groups = {
        "benign (eval)": signals[sets["eval"]],
        "harmful refused": signals[attacked[refused[attacked]]],
        "jailbroken": signals[sets["jailbroken"]],
    }
    private = {"signals": signals, "scores": scores, "sets": sets, "groups": groups, "detectors": detectors,
               "guard_fits": g["fits"], "defense_seconds": seconds}
    return out, private


def online_guard(guard: SRIGuard, signals: np.ndarray, sets: dict[str, np.ndarray], cfg: StudyConfig) -> dict:
    """The guard read while generating: per-step thresholds from the calibration rows, first alarms."""
    every = cfg.sri.online_every
    fill = signals[sets["guard_fit"]].mean(axis=0)
    limits = online_thresholds(guard, signals[sets["calibration"]], fill, every=every)
    out: dict[str, Any] = {"every": every}
    steps = signals.shape[1]
    for name in ("eval_seen_topics", "eval_unseen_topics", "attacked", "jailbroken"):
        sel = sets[name]
        if not len(sel):
            out[name] = {"alarmed": stats.rate([])}
            continue
        alarms = first_alarms(guard, signals[sel], fill, every=every, thresholds=limits)
        entry: dict[str, Any] = {"alarmed": _flag_rate(alarms >= 0)}
        if (alarms >= 0).any():
            entry["mean_alarm_fraction"] = float(((alarms[alarms >= 0] + 1) / steps).mean())
        out[name] = entry
    return out
