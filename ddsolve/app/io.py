"""The output directory of a run: the contract every command keeps.

=================== ==============================================================
``density.h5``      density snapshots, py-pde :class:`~pde.FileStorage` (t = 0, every
                    ``save_every``, the final time, and the last good state of a
                    failed run)
``diagnostics.csv`` one row per saved time: ``t, mass, energy, free_energy,
                    min_density``, then ``risk`` (if the model has one), the moments
                    ``mean_<axis>, m2_<axis>``, then problem-specific columns; written
                    and flushed row by row
``summary.json``    resolved config, versions, wall time, steps, solver info, final
                    diagnostics, status (``ok`` / ``failed``) and failure
``density.png``     1D: curves at saved times; 2D: the final density
``diagnostics.png`` free energy, mass drift and minimum density against t
=================== ==============================================================

Snapshots and rows are produced by py-pde trackers fired at the save times, so the
same interrupts drive the storage, the diagnostics and the progress bar.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pde
from pde.trackers.base import TrackerBase
from pde.trackers.interrupts import FixedInterrupts

__all__ = [
    "DENSITY_FILE",
    "DIAGNOSTICS_FILE",
    "SUMMARY_FILE",
    "DENSITY_FIGURE",
    "DIAGNOSTICS_FIGURE",
    "save_times",
    "jsonable",
    "package_versions",
    "write_json",
    "read_diagnostics",
    "DiagnosticsCSV",
    "DiagnosticsTracker",
    "ProgressBarTracker",
    "show_progress",
    "OutputDirectory",
]

DENSITY_FILE = "density.h5"
DIAGNOSTICS_FILE = "diagnostics.csv"
SUMMARY_FILE = "summary.json"
DENSITY_FIGURE = "density.png"
DIAGNOSTICS_FIGURE = "diagnostics.png"

_VERSIONED = ("ddsolve", "numpy", "scipy", "numba", "py-pde")


def save_times(t_final: float, save_every: float) -> np.ndarray:
    """``0, s, 2s, ...`` up to ``t_final``, with ``t_final`` itself always included
    (a multiple of ``s`` within ``1e-9 s`` of ``t_final`` is replaced by it). The
    multiples are rounded to 12 significant digits."""
    n = int(math.floor(t_final / save_every * (1 + 1e-12)))
    times = [float(f"{k * save_every:.12g}") for k in range(n + 1)]  # 0.3, not 0.30000000000000004
    if t_final - times[-1] <= 1e-9 * save_every:
        times[-1] = t_final
    else:
        times.append(t_final)
    return np.asarray(times, dtype=float)


def jsonable(obj: Any) -> Any:
    """Plain JSON data from nested dicts/lists/NumPy values; non-finite floats become
    the strings ``"inf"``, ``"-inf"``, ``"nan"`` (which the config parser reads back)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def package_versions() -> dict[str, str]:
    """Installed versions of ddsolve and its numerical dependencies."""
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[name] = "unknown"
    return out


def write_json(path: str | Path, data: Any) -> None:
    """Write ``jsonable(data)`` atomically (write a temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def read_diagnostics(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a ``diagnostics.csv`` as float arrays."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


class DiagnosticsCSV:
    """``diagnostics.csv``, written and flushed one row at a time.

    The columns are those of the first row; later rows must have the same keys.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = self.path.open("w", newline="")
        self._writer: csv.DictWriter | None = None
        self.rows: list[dict[str, float]] = []

    def write(self, row: Mapping[str, float]) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self._fh, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow({k: repr(float(v)) for k, v in row.items()})
        self._fh.flush()
        self.rows.append(dict(row))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class DiagnosticsTracker(TrackerBase):
    """py-pde tracker writing one diagnostics row per interrupt.

    Parameters
    ----------
    compute : callable
        ``compute(rho, t) -> dict`` of diagnostics for the density data ``rho``.
    sink : DiagnosticsCSV
    interrupts :
        py-pde interrupt specification (the save times).
    """

    def __init__(self, compute: Callable[[np.ndarray, float], dict], sink: DiagnosticsCSV,
                 interrupts) -> None:
        super().__init__(interrupts=interrupts)
        self.compute = compute
        self.sink = sink

    def handle(self, field: pde.ScalarField, t: float) -> None:
        self.sink.write(self.compute(field.data, t))


class ProgressBarTracker(TrackerBase):
    """A tqdm progress bar over simulated time on stderr, updated at the interrupts."""

    def __init__(self, t_final: float, interrupts) -> None:
        super().__init__(interrupts=interrupts)
        self.t_final = float(t_final)
        self.bar = None

    def initialize(self, field, info=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.t_final, file=sys.stderr, unit="t", leave=False,
                        bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
        return super().initialize(field, info)

    def handle(self, field, t):
        self.bar.n = min(float(t), self.t_final)
        self.bar.refresh()

    def finalize(self, info=None):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def show_progress(requested: bool = True) -> bool:
    """Progress bars only when asked for, stderr is a terminal and ``CI`` is unset."""
    return bool(requested) and sys.stderr.isatty() and not os.environ.get("CI")


class OutputDirectory:
    """Writer of one run's output directory.

    Parameters
    ----------
    path : path-like
        The directory (created if needed; existing output files are replaced).
    diagnostics : callable
        ``diagnostics(rho, t) -> dict``, one ``diagnostics.csv`` row.
    times : sequence of float
        Save times (snapshots and rows).
    info : dict, optional
        Stored as attributes of ``density.h5``.
    """

    def __init__(self, path: str | Path, diagnostics: Callable[[np.ndarray, float], dict],
                 times: Sequence[float], info: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        for name in (DENSITY_FILE, DIAGNOSTICS_FILE, SUMMARY_FILE, DENSITY_FIGURE, DIAGNOSTICS_FIGURE):
            (self.path / name).unlink(missing_ok=True)
        self.times = np.asarray(times, dtype=float)
        self.compute = diagnostics
        self.storage = pde.FileStorage(self.path / DENSITY_FILE, info=dict(info or {}),
                                       write_mode="truncate")
        self.csv = DiagnosticsCSV(self.path / DIAGNOSTICS_FILE)
        self._progress: ProgressBarTracker | None = None

    @property
    def rows(self) -> list[dict[str, float]]:
        return self.csv.rows

    @property
    def last_saved_time(self) -> float | None:
        return self.rows[-1]["t"] if self.rows else None

    def trackers(self, progress: bool = False) -> list[TrackerBase]:
        """Storage, diagnostics and (optionally) progress trackers, firing at the save times."""
        trackers: list[TrackerBase] = [
            self.storage.tracker(FixedInterrupts(self.times)),
            DiagnosticsTracker(self.compute, self.csv, FixedInterrupts(self.times)),
        ]
        if progress:
            self._progress = ProgressBarTracker(float(self.times[-1]), FixedInterrupts(self.times))
            trackers.append(self._progress)
        return trackers

    def record(self, state: pde.ScalarField, t: float) -> None:
        """Save a snapshot and a row outside the trackers (the last good state of a
        failed run), unless time ``t`` was saved already. Only while the trackers are
        writing, i.e. after the controller initialised them and before it finalised
        them."""
        last = self.last_saved_time
        if last is not None and abs(t - last) <= 1e-12 * max(1.0, abs(t)):
            return
        self.storage.append(state, time=t)
        self.csv.write(self.compute(state.data, t))

    def close(self) -> None:
        """Close ``density.h5`` and ``diagnostics.csv`` (idempotent)."""
        if self._progress is not None:
            self._progress.close()
        self.storage.end_writing()
        self.storage.close()
        self.csv.close()

    def write_figures(self, coords) -> str | None:
        """``density.png`` and ``diagnostics.png``; returns an error message instead of
        raising if plotting fails (the numerical output is already on disk)."""
        from ddsolve.app.plotting import plot_density, plot_diagnostics

        try:
            reader = pde.FileStorage(self.path / DENSITY_FILE, write_mode="readonly")
            try:
                times = np.asarray(reader.times)
                data = [np.array(reader.data[i]) for i in range(len(times))]
            finally:
                reader.close()
            plot_density(coords, times, data, self.path / DENSITY_FIGURE)
            plot_diagnostics(self.rows, self.path / DIAGNOSTICS_FIGURE)
        except Exception as err:  # noqa: BLE001 - figures must not fail a finished run
            return f"{type(err).__name__}: {err}"
        return None
