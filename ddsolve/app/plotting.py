"""Figures of a run: ``density.png`` and ``diagnostics.png``.

Uses Matplotlib's object interface (no pyplot state, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.grid.coordinates import Coordinates

__all__ = ["plot_density", "plot_diagnostics"]

_MAX_CURVES = 12


def plot_density(coords: Coordinates, times: Sequence[float], snapshots: Sequence[np.ndarray],
                 path: str | Path) -> None:
    """1D: density curves at (up to 12 evenly chosen) saved times; 2D: the last snapshot
    as an image."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    names = coords.names
    if coords.ndim == 1:
        x = coords.axes[0].centers
        idx = np.unique(np.linspace(0, len(times) - 1, min(len(times), _MAX_CURVES)).round().astype(int))
        colors = _colormap(len(idx))
        for c, i in zip(colors, idx):
            ax.plot(x, snapshots[i], color=c, lw=1.2, label=f"t = {times[i]:.4g}")
        ax.set_xlabel(names[0])
        ax.set_ylabel(f"density of {names[0]}")
        ax.legend(fontsize="small", ncols=2 if len(idx) > 6 else 1)
    else:
        a, b = coords.axes
        image = ax.imshow(np.asarray(snapshots[-1]).T, origin="lower", aspect="auto",
                          extent=(a.lower, a.upper, b.lower, b.upper), cmap="viridis")
        fig.colorbar(image, ax=ax, label="density")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(f"t = {times[-1]:.4g}")
    fig.savefig(path, dpi=110)


def plot_diagnostics(rows: Sequence[Mapping[str, float]], path: str | Path) -> None:
    """Free energy (and energy), mass drift |mass(t) - mass(0)| and minimum density
    against time."""
    fig = Figure(figsize=(6.4, 7.2), layout="constrained")
    ax_f, ax_m, ax_min = fig.subplots(3, 1, sharex=True)
    if rows:
        t = np.array([r["t"] for r in rows])
        col = {k: np.array([r[k] for r in rows]) for k in ("free_energy", "energy", "mass", "min_density")}
        ax_f.plot(t, col["free_energy"], "o-", ms=3, label="free energy")
        if not np.allclose(col["energy"], col["free_energy"]):
            ax_f.plot(t, col["energy"], "s--", ms=3, label="energy")
        ax_f.legend(fontsize="small")
        drift = np.abs(col["mass"] - col["mass"][0])
        ax_m.semilogy(t, np.maximum(drift, 1e-17), "o-", ms=3)
        if np.all(col["min_density"] > 0):
            ax_min.semilogy(t, col["min_density"], "o-", ms=3)
        else:
            ax_min.plot(t, col["min_density"], "o-", ms=3)
    ax_f.set_ylabel("free energy")
    ax_m.set_ylabel("|mass - mass(0)|")
    ax_min.set_ylabel("min density")
    ax_min.set_xlabel("t")
    fig.savefig(path, dpi=110)


def _colormap(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.9, max(n, 1))]
