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

__all__ = ["plot_particles", "plot_particle_file", "plot_particle_diagnostics", "plotted_snapshots"]

_MAX_CURVES = 6


def plotted_snapshots(count: int, ncoords: int) -> list[int]:
    """Indices of the snapshots :func:`plot_particles` draws out of ``count``: up to six
    evenly spaced ones for one coordinate, the first and the last for more."""
    if count == 0:
        return []
    if ncoords == 1:
        return [int(i) for i in np.unique(np.linspace(0, count - 1, min(count, _MAX_CURVES)).round())]
    return sorted({0, count - 1})


def plot_particles(times: Sequence[float], snapshots: Sequence[np.ndarray], names: Sequence[str],
                   path: str | Path) -> None:
    """One coordinate: histograms (as densities) at up to six snapshot times; two or
    more: scatter of the first two coordinates at the first and last snapshot.
    Non-finite values are left out, and a snapshot whose values cannot be binned (a
    diverged run: a range below the resolution of its magnitude) is skipped."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    if len(times) and len(names) == 1:
        idx = plotted_snapshots(len(times), 1)
        for c, i in zip(np.linspace(0, 0.9, len(idx)), idx):
            values = np.asarray(snapshots[i])[:, 0]
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            try:
                ax.hist(values, bins=min(80, max(10, values.size // 20)), density=True, histtype="step",
                        color=cmap(c), lw=1.2, label=f"t = {times[i]:.4g}")
            except ValueError:  # e.g. "Too many bins for data range"
                continue
        ax.set_xlabel(names[0])
        ax.set_ylabel(f"density of {names[0]}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    elif len(times):
        first_last = (0, len(times) - 1) if len(times) > 1 else (0,)
        for i, c, label in zip(first_last, (0.1, 0.8), ("initial", "final")):
            pts = np.asarray(snapshots[i])
            pts = pts[np.all(np.isfinite(pts[:, :2]), axis=1)]
            ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=cmap(c),
                       label=f"{label}, t = {times[i]:.4g}")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend(fontsize="small", markerscale=4)
    fig.savefig(path, dpi=110)


def plot_particle_file(h5_path: str | Path, names: Sequence[str], path: str | Path) -> None:
    """:func:`plot_particles` of the snapshots in ``particles.h5`` (reading only the
    snapshots it draws)."""
    from .storage import read_coordinates

    # plot_particles picks the same snapshots again out of those: all of them
    times, snapshots = read_coordinates(h5_path, lambda count: plotted_snapshots(count, len(names)))
    plot_particles(times, snapshots, names, path)


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
