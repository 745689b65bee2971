"""Figures of a particle run: ``particles.png`` and ``diagnostics.png``.

Matplotlib's object interface (no pyplot state, no display needed), like
:mod:`ddsolve.app.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

__all__ = ["plot_particles", "plot_particle_diagnostics"]

_MAX_CURVES = 6


def plot_particles(times: Sequence[float], snapshots: Sequence[np.ndarray], names: Sequence[str],
                   path: str | Path) -> None:
    """One coordinate: histograms (as densities) at up to six snapshot times; two or
    more: scatter of the first two coordinates at the first and last snapshot."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    if len(times) and len(names) == 1:
        idx = np.unique(np.linspace(0, len(times) - 1, min(len(times), _MAX_CURVES)).round().astype(int))
        for c, i in zip(np.linspace(0, 0.9, len(idx)), idx):
            values = np.asarray(snapshots[i])[:, 0]
            ax.hist(values, bins=min(80, max(10, values.size // 20)), density=True, histtype="step",
                    color=cmap(c), lw=1.2, label=f"t = {times[i]:.4g}")
        ax.set_xlabel(names[0])
        ax.set_ylabel(f"density of {names[0]}")
        ax.legend(fontsize="small")
    elif len(times):
        for i, c, label in ((0, 0.1, "initial"), (len(times) - 1, 0.8, "final")):
            pts = np.asarray(snapshots[i])
            ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=cmap(c),
                       label=f"{label}, t = {times[i]:.4g}")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend(fontsize="small", markerscale=4)
    fig.savefig(path, dpi=110)


def plot_particle_diagnostics(rows: Sequence[Mapping[str, float]], path: str | Path) -> None:
    """Risk (or loss, or energy) against time, and the first moments."""
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax_e, ax_m = fig.subplots(2, 1, sharex=True)
    if rows:
        t = np.array([r["t"] for r in rows])
        key = next((k for k in ("risk", "loss", "energy") if k in rows[0]), None)
        if key is not None:
            v = np.array([r[key] for r in rows])
            if np.all(v > 0) and v.max() / v.min() > 30:
                ax_e.semilogy(t, v, "o-", ms=3)
            else:
                ax_e.plot(t, v, "o-", ms=3)
            ax_e.set_ylabel(key)
        for k in rows[0]:
            if k.startswith("mean_"):
                ax_m.plot(t, [r[k] for r in rows], "o-", ms=3, label=k)
        ax_m.legend(fontsize="small")
    ax_m.set_xlabel("t")
    ax_m.set_ylabel("mean")
    fig.savefig(path, dpi=110)
