"""Plots (matplotlib, headless): attack success with CIs, the SRI plot, guard ROC curves.

Every function returns PNG bytes (and writes them to ``path`` when given), so the HTML report can embed
them and the run directory keeps them as files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"ar": "#1f77b4", "diffusion": "#d62728", "diffusion-l2r": "#9467bd"}
GROUP_COLOURS = {
    "benign": "#2ca02c",
    "harmful refused": "#1f77b4",
    "jailbroken": "#d62728",
    "attacked, refused": "#ff7f0e",
}


def group_colour(name: str) -> str | None:
    """A group's colour: the exact key, else the key its name starts with ("benign (eval)" is benign's green),
    so no two groups fall back to matplotlib's cycle and share its first blue."""
    if name in GROUP_COLOURS:
        return GROUP_COLOURS[name]
    return next((c for key, c in GROUP_COLOURS.items() if name.startswith(key)), None)


def _figure(width: float = 7.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return plt, fig, ax


def _png(plt, fig, path: str | Path | None) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def rates_plot(
    rates: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    metric: str = "attack success rate",
    path: str | Path | None = None,
) -> bytes:
    """Grouped bars: ``rates[sampler][attack] = {"k", "n", "rate", "ci"}`` with 95% CI whiskers."""
    plt, fig, ax = _figure(8.0, 4.0)
    samplers = list(rates)
    attacks: list[str] = []
    for s in samplers:
        attacks += [a for a in rates[s] if a not in attacks]
    width = 0.8 / max(1, len(samplers))
    x = np.arange(len(attacks))
    for i, s in enumerate(samplers):
        vals, lo, hi, pos = [], [], [], []
        for j, a in enumerate(attacks):
            if a in rates[s] and rates[s][a].get("rate") is not None:
                r = rates[s][a]
                vals.append(r["rate"])
                lo.append(max(0.0, r["rate"] - r["ci"][0]))
                hi.append(max(0.0, r["ci"][1] - r["rate"]))
                pos.append(x[j] + (i - (len(samplers) - 1) / 2) * width)
        ax.bar(pos, vals, width, yerr=[lo, hi], capsize=3, label=s, color=COLOURS.get(s))
    ax.set_xticks(x, attacks, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(plt, fig, path)


def curve_plot(
    series: Mapping[str, Mapping[float, Mapping[str, Any]]], *, xlabel: str, ylabel: str,
    path: str | Path | None = None,
) -> bytes:
    """Rates against a numeric setting: ``series[label][x] = {"k", "n", "rate", "ci"}``, with CI whiskers."""
    plt, fig, ax = _figure(6.0, 4.0)
    for label, points in series.items():
        xs = sorted(x for x, r in points.items() if r.get("rate") is not None)
        if not xs:
            continue
        rates = [points[x]["rate"] for x in xs]
        lo = [max(0.0, points[x]["rate"] - points[x]["ci"][0]) for x in xs]
        hi = [max(0.0, points[x]["ci"][1] - points[x]["rate"]) for x in xs]
        ax.errorbar(xs, rates, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return _png(plt, fig, path)


def sri_plot(
    groups: Mapping[str, np.ndarray],
    *,
    examples: Sequence[tuple[str, np.ndarray]] = (),
    title: str = "",
    path: str | Path | None = None,
) -> bytes:
    """The SRI plot: mean signal (band: interquartile range) per group over steps, plus example trajectories.

    ``groups[name]`` is [N, S]; ``examples`` are ``(label, [S])`` single trajectories drawn thin.
    """
    plt, fig, ax = _figure(7.0, 4.0)
    for name, sig in groups.items():
        sig = np.asarray(sig, dtype=float)
        if sig.ndim != 2 or sig.shape[0] == 0:
            continue
        steps = np.arange(1, sig.shape[1] + 1)
        colour = group_colour(name)
        ax.plot(steps, sig.mean(axis=0), label=f"{name} (n={sig.shape[0]})", color=colour, lw=2)
        q1, q3 = np.quantile(sig, [0.25, 0.75], axis=0)
        ax.fill_between(steps, q1, q3, color=colour, alpha=0.15, lw=0)
    for label, trajectory in examples:
        trajectory = np.asarray(trajectory, dtype=float)
        ax.plot(np.arange(1, trajectory.shape[0] + 1), trajectory, lw=0.8, ls="--", alpha=0.8, label=label)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.axhline(0.3, color="grey", lw=0.6, ls=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("generation step")
    ax.set_ylabel("SRI signal s_t (1: compliance-like, 0: refusal-like)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=7, loc="best")
    return _png(plt, fig, path)


def roc_plot(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "", path: str | Path | None = None
) -> bytes:
    """ROC curves: ``curves[label] = (positive scores, negative scores)``. With no positive (or no negative) for
    any curve -- an arm no attack jailbroke -- the panel says so instead of drawing empty axes."""
    plt, fig, ax = _figure(5.0, 4.0)
    drawn = [(label, np.asarray(pos, float), np.asarray(neg, float)) for label, (pos, neg) in curves.items()]
    drawn = [(label, pos, neg) for label, pos, neg in drawn if pos.size and neg.size]
    if not drawn:
        n_pos = max((len(p) for p, _ in curves.values()), default=0)
        text = ("no jailbroken answer on this arm:\nno ROC curve to draw" if n_pos == 0
                else "no benign answer to compare with:\nno ROC curve to draw")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        if title:
            ax.set_title(title)
        return _png(plt, fig, path)
    for label, pos, neg in drawn:
        thresholds = np.unique(np.concatenate([pos, neg, [np.inf, -np.inf]]))[::-1]
        tpr = [(pos > t).mean() for t in thresholds]
        fpr = [(neg > t).mean() for t in thresholds]
        ax.plot(fpr, tpr, label=label, lw=1.5, color=COLOURS.get(label))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
    ax.set_xlabel("false positive rate (benign)")
    ax.set_ylabel("true positive rate (attacks)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _png(plt, fig, path)


def trajectory_plot(
    canvas: np.ndarray, signal: np.ndarray, mask_id: int, *, title: str = "", path: str | Path | None = None
) -> bytes:
    """One diffusion generation: when each response position was committed (top) beside its SRI curve."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    c = np.asarray(canvas)
    filled = ((c != mask_id) & (c >= 0)).astype(float)  # [S, G]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.0), dpi=110, sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    steps = np.arange(1, c.shape[0] + 1)
    top.imshow(filled.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
               extent=(0.5, c.shape[0] + 0.5, -0.5, c.shape[1] - 0.5))
    top.set_ylabel("response position")
    top.set_title(title or "committed positions (black) per step")
    bottom.plot(steps, np.asarray(signal, dtype=float), color="#d62728", lw=1.8)
    bottom.axhline(0.5, color="grey", lw=0.6, ls=":")
    bottom.axhline(0.3, color="grey", lw=0.6, ls=":")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("denoising step")
    bottom.set_ylabel("SRI s_t")
    return _png(plt, fig, path)
