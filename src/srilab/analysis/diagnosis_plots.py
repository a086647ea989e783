"""The figures of a guard diagnosis (:func:`srilab.analysis.guard_diagnosis.diagnose`), one function per PNG: the
per-step spread, the paper autoencoder's per-step contribution, the effects on the unseen-topic FPR, the variants
at the guard's threshold and the topic rotation. Each returns a matplotlib figure; :class:`Figures` saves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Figures:
    """Saves figures as ``<out>/<stem>_<name>.png`` and keeps their paths (in order)."""

    def __init__(self, out: Path, stem: str) -> None:
        self.out, self.stem, self.paths = out, stem, []
        out.mkdir(parents=True, exist_ok=True)

    def save(self, fig: Any, name: str) -> None:
        fig.tight_layout()
        path = self.out / f"{self.stem}_{name}.png"
        fig.savefig(path, dpi=100)
        pyplot().close(fig)
        self.paths.append(str(path))


def spread_figure(arm: str, s: np.ndarray, z: np.ndarray, sets: dict[str, np.ndarray]) -> Any:
    """Median and 10-90% band per step of s_t and the log-ratio: guard_fit, eval seen / unseen, jailbroken."""
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4))
    steps = np.arange(s.shape[1])
    parts = ((sets["guard_fit"], "guard_fit", "grey"), (sets["eval_seen_topics"], "eval seen", "tab:blue"),
             (sets["eval_unseen_topics"], "eval unseen", "tab:orange"), (sets["jailbroken"], "jailbroken", "tab:red"))
    for ax, X, label in ((axes[0], s, "s_t (tau=0.1)"), (axes[1], z, "log-ratio")):
        for sel, name, colour in parts:
            if len(sel):
                med = np.median(X[sel], axis=0)
                lo, hi = np.quantile(X[sel], [0.1, 0.9], axis=0)
                ax.plot(steps, med, color=colour, label=f"{name} (n={len(sel)})")
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{arm}: median and 10-90% band per step")
    return fig


def contribution_figure(arm: str, errs: np.ndarray, threshold: float, sets: dict[str, np.ndarray]) -> Any:
    """The paper autoencoder's mean per-step share of the score, with the threshold per step."""
    fig, ax = pyplot().subplots(figsize=(7, 4))
    steps = np.arange(errs.shape[1])
    for sel, name, colour in ((sets["eval_seen_topics"], "eval seen", "tab:blue"),
                              (sets["eval_unseen_topics"], "eval unseen", "tab:orange"),
                              (sets["jailbroken"], "jailbroken", "tab:red")):
        if len(sel):
            ax.plot(steps, errs[sel].mean(axis=0) / errs.shape[1], color=colour, label=name)
    ax.axhline(threshold / errs.shape[1], color="k", ls=":", label="threshold / S")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean contribution to the score")
    ax.legend(fontsize=7)
    ax.set_title(f"{arm}: paper autoencoder, per-step share of the score")
    return fig


def effects_figure(arm: str, effects: dict[str, Any]) -> Any:
    """Flagged rates against tau and the standardisation floor; unseen FPR against the number of fit groups."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.8))
    for ax, key, xlabel in ((axes[0], "tau", "tau"), (axes[1], "std_floor", "standardisation floor")):
        xs = [float(k) for k in effects[key]]
        for part, colour in (("seen", "tab:blue"), ("unseen", "tab:orange"), ("tpr_jailbroken", "tab:red")):
            ax.plot(xs, [effects[key][k][part]["rate"] or 0 for k in effects[key]], "o-", color=colour, label=part)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("flagged at the guard's threshold")
    axes[0].legend(fontsize=7)
    by_groups = effects["fit_groups"]
    for name, colour in (("paper", "tab:orange"), ("log_ratio+mahalanobis+robust", "tab:green")):
        ks = sorted(by_groups, key=int)
        axes[2].plot([int(k) for k in ks],
                     [np.mean([e[name]["unseen"]["rate"] or 0 for e in by_groups[k]]) for k in ks], "o-",
                     color=colour, label=name)
    axes[2].set_xlabel("benign fit topic groups")
    axes[2].set_ylabel("FPR, eval unseen")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{arm}: what moves the unseen-topic FPR")
    return fig


def variants_figure(arm: str, comp: dict[str, Any], quantile: float) -> Any:
    """Every variant's seen / unseen FPR and TPR on jailbroken answers at the guard's threshold."""
    names = list(comp["variants"])
    fig, ax = pyplot().subplots(figsize=(10, 4))
    xs = np.arange(len(names))
    bars = ((-0.25, "fpr_eval_seen_topics", "tab:blue"), (0.0, "fpr_eval_unseen_topics", "tab:orange"),
            (0.25, "tpr_jailbroken", "tab:red"))
    for off, part, colour in bars:
        ax.bar(xs + off, [comp["variants"][n]["at_quantile"][part]["rate"] or 0 for n in names], width=0.25,
               color=colour, label=part)
    ax.axhline(3 * (1 - quantile), color="k", ls=":", label="3x nominal")
    ax.set_xticks(xs, [n + (" *" if n == comp["chosen"] else "") for n in names], rotation=35, ha="right", fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title(f"{arm}: variants at the guard's threshold (* = chosen on calibration data)")
    return fig


def rotation_figure(arm: str, rot: dict[str, Any], quantile: float) -> Any:
    """Per split of the topic rotation: the held-out FPR (and, when there are any, jailbroken answers flagged) of
    the study's and the paper's guard."""
    has_jb = any(sp["study"]["tpr_jailbroken"]["n"] for sp in rot["splits"])
    fig, axes = pyplot().subplots(2 if has_jb else 1, 1, figsize=(9, 6.4 if has_jb else 3.8), squeeze=False)
    xs = np.arange(len(rot["splits"]))
    labels = [("the run's" if sp["own_protocol"] else f"draw {sp['repeat']}") + f"\n{len(sp['held_out'])} groups"
              for sp in rot["splits"]]
    for off, name, colour in ((-0.2, "study", "tab:orange"), (0.2, "paper", "tab:grey")):
        p = rot["pooled"][name]
        pooled = f"pooled {100 * (p['rate'] or 0):.1f}% ({p['k']}/{p['n']})"
        axes[0][0].bar(xs + off, [sp[name]["fpr_unseen"]["rate"] or 0 for sp in rot["splits"]], width=0.4,
                       color=colour, label=f"{name} guard: {pooled}")
        if has_jb:
            axes[1][0].bar(xs + off, [sp[name]["tpr_jailbroken"]["rate"] or 0 for sp in rot["splits"]],
                           width=0.4, color=colour, label=f"{name} guard")
    axes[0][0].axhline(3 * (1 - quantile), color="k", ls=":", label="3x nominal")
    axes[0][0].set_ylabel("FPR, held-out topic groups")
    axes[0][0].legend(fontsize=7)
    axes[0][0].set_title(f"{arm}: every benign topic group unseen once per draw ({rot['groups']} groups, "
                         f"{rot['repeats']} draw(s))")
    if has_jb:
        axes[1][0].set_ylabel(f"jailbroken flagged (n={rot['splits'][0]['study']['tpr_jailbroken']['n']})")
        axes[1][0].set_ylim(0, 1.05)
        axes[1][0].legend(fontsize=7)
    for row in axes:
        row[0].set_xticks(xs, labels, fontsize=6)
    return fig
