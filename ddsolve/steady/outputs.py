"""The files of ``ddsolve steady``: ``states.csv``, ``state_<id>.h5`` (one py-pde
snapshot each, readable with ``pde.FileStorage`` like ``density.h5``), ``branches.csv``,
``special_points.csv``, ``convergence.csv`` and ``bifurcation.png``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pde

__all__ = ["STATES_FILE", "BRANCHES_FILE", "SPECIAL_FILE", "CONVERGENCE_FILE", "BIFURCATION_FIGURE",
           "write_rows", "write_state", "plot_bifurcation", "order_column"]

STATES_FILE = "states.csv"
BRANCHES_FILE = "branches.csv"
SPECIAL_FILE = "special_points.csv"
CONVERGENCE_FILE = "convergence.csv"
BIFURCATION_FIGURE = "bifurcation.png"


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> None:
    """A CSV with the union of the rows' keys (``first`` first, then in order of appearance)."""
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def write_state(path: str | Path, field: pde.ScalarField, info: Mapping[str, Any]) -> None:
    """One snapshot at time 0 in a py-pde ``FileStorage``."""
    storage = pde.FileStorage(path, info=dict(info), write_mode="truncate")
    try:
        storage.start_writing(field)
        storage.append(field, time=0.0)
        storage.end_writing()
    finally:
        storage.close()


def order_column(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    """The quantity a bifurcation diagram shows: the first ``order_<axis>`` column, else
    the mean of the first axis (the magnetisation of Curie–Weiss), else the risk."""
    keys = rows[0].keys() if rows else ()
    for k in keys:
        if k.startswith("order_"):
            return k
    if f"mean_{axes[0]}" in keys:
        return f"mean_{axes[0]}"
    return "risk" if "risk" in keys else "free_energy"


def plot_bifurcation(path: str | Path, key: str, rows: Sequence[Mapping[str, Any]],
                     special: Sequence[Mapping[str, Any]], column: str) -> None:
    """``column`` and the free energy against ``key`` along every branch: stable solid,
    unstable dashed; branch points squares, folds triangles."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    branches = sorted({r["branch"] for r in rows})
    for b in branches:
        pts = [r for r in rows if r["branch"] == b]
        color = f"C{b % 10}"
        for ax, col in zip(axes, (column, "free_energy")):
            p = np.array([r[key] for r in pts])
            v = np.array([r[col] for r in pts])
            stable = np.array([bool(r["stable"]) for r in pts])
            start = 0
            for i in range(1, len(pts) + 1):
                if i == len(pts) or stable[i] != stable[start]:
                    seg = slice(start, min(i + 1, len(pts)))
                    ax.plot(p[seg], v[seg], color=color, ls="-" if stable[start] else "--",
                            label=f"branch {b}" if start == 0 and ax is axes[0] else None)
                    start = i
    for s in special:
        marker = "s" if s["kind"] == "branch-point" else "^"
        for ax, col in zip(axes, (column, "free_energy")):
            if col in s and not _nan(s[col]):
                ax.plot(s[key], s[col], marker, color="k", ms=7, mfc="none")
    axes[0].set(xlabel=key, ylabel=column, title="stationary states (solid: stable, dashed: unstable)")
    axes[1].set(xlabel=key, ylabel="free energy", title="free energy (markers: special points)")
    if len(branches) <= 10:
        axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
