"""The output directory of a run: the contract every command keeps.

=================== ==============================================================
``density.h5``      density snapshots, py-pde :class:`~pde.FileStorage` layout (t = 0,
                    every ``save_every``, the final time, and the last good state of a
                    failed or interrupted run), flushed snapshot by snapshot, so that
                    h5py and ``pde.FileStorage`` read every snapshot written before a
                    ``kill -9``
``diagnostics.csv`` one row per saved time: ``t, mass, energy, free_energy,
                    min_density``, then ``risk`` (if the model has one), the moments
                    ``mean_<axis>, m2_<axis>``, then problem-specific columns; written
                    and flushed row by row
``summary.json``    resolved config, versions, wall time, steps, solver info, final
                    diagnostics, status (``ok`` / ``failed``) and failure
``density.png``     1D: curves at saved times; 2D: the final density
``diagnostics.png`` free energy, mass drift and minimum density against t
=================== ==============================================================

Snapshots and rows are written together by :meth:`OutputDirectory.save`, which the run's
time loop (:mod:`ddsolve.app.timeloop`) calls at the save times; ``--resume`` reopens the
directory with the snapshots and rows a checkpoint had seen and appends after them.
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
from pde.tools.misc import hdf_write_attributes
from pde.trackers.base import TrackerBase

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
    "DurableFileStorage",
    "truncate_snapshots",
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

    def __init__(self, path: str | Path, keep: int | None = None) -> None:
        self.path = Path(path)
        self._writer: csv.DictWriter | None = None
        self.rows: list[dict[str, float]] = []
        if keep is None:
            self._fh = self.path.open("w", newline="")
            return
        # resume: keep the header and the first `keep` rows, append after them
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames
            kept = [row for _, row in zip(range(keep), reader)]
        if len(kept) < keep:
            raise ValueError(f"{self.path} has {len(kept)} rows, the checkpoint saw {keep}")
        self.rows = [{k: float(v) for k, v in row.items()} for row in kept]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as fh:
            if fields:
                writer = csv.DictWriter(fh, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)
        os.replace(tmp, self.path)
        self._fh = self.path.open("a", newline="")
        if fields:
            self._writer = csv.DictWriter(self._fh, fieldnames=fields)

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


class DurableFileStorage(pde.FileStorage):
    """py-pde's :class:`~pde.FileStorage`, made durable: the attributes (grid, field,
    ``info``) are written when writing starts and the file is flushed after every
    snapshot, so that a run killed at any moment leaves a file that h5py and
    ``pde.FileStorage`` open with every snapshot written before. (py-pde writes the
    attributes and flushes only in ``end_writing``; a killed run used to leave an
    unreadable 96-byte file.)"""

    def start_writing(self, field, info=None) -> None:
        super().start_writing(field, info)
        hdf_write_attributes(self._file, self.info)
        self._file.flush()

    def _append_data(self, data, time) -> None:
        super()._append_data(data, time)
        if self._file is not None and self._file.id.valid:
            hdf_write_attributes(self._file, {"data_length": self._data_length})
            self._file.flush()


def truncate_snapshots(path: str | Path, keep: int) -> None:
    """Cut a ``density.h5`` back to its first ``keep`` snapshots (``--resume``)."""
    import h5py

    with h5py.File(path, "a") as h5:
        length = min(h5["times"].shape[0], json.loads(h5.attrs.get("data_length", "null")) or 10**18)
        if length < keep:
            raise ValueError(f"{path} has {length} snapshots, the checkpoint saw {keep}")
        for name in ("times", "data"):
            h5[name].resize(keep, axis=0)
        h5.attrs["data_length"] = json.dumps(keep)


def show_progress(requested: bool = True) -> bool:
    """Progress bars only when asked for, stderr is a terminal and ``CI`` is unset."""
    return bool(requested) and sys.stderr.isatty() and not os.environ.get("CI")


class OutputDirectory:
    """Writer of one run's output directory.

    Parameters
    ----------
    path : path-like
        The directory (created if needed). Which earlier files may be there is the run
        lifecycle's decision (:mod:`ddsolve.app.outdir`); this class writes its own.
    diagnostics : callable
        ``diagnostics(rho, t) -> dict``, one ``diagnostics.csv`` row.
    times : sequence of float
        Save times (snapshots and rows).
    info : dict, optional
        Stored as attributes of ``density.h5``.
    keep : int, optional
        Resume: keep the first ``keep`` snapshots and rows already in the directory and
        append after them (default: start both files afresh).
    """

    def __init__(self, path: str | Path, diagnostics: Callable[[np.ndarray, float], dict],
                 times: Sequence[float], info: Mapping[str, Any] | None = None,
                 keep: int | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.times = np.asarray(times, dtype=float)
        self.compute = diagnostics
        if keep is None:
            for name in (DENSITY_FIGURE, DIAGNOSTICS_FIGURE):
                (self.path / name).unlink(missing_ok=True)
        else:
            truncate_snapshots(self.path / DENSITY_FILE, keep)
        self.storage = DurableFileStorage(self.path / DENSITY_FILE, info=dict(info or {}),
                                          write_mode="truncate" if keep is None else "append")
        self.csv = DiagnosticsCSV(self.path / DIAGNOSTICS_FILE, keep)
        self._writing = False

    @property
    def rows(self) -> list[dict[str, float]]:
        return self.csv.rows

    @property
    def last_saved_time(self) -> float | None:
        return self.rows[-1]["t"] if self.rows else None

    def start(self, state: pde.ScalarField) -> None:
        """Open ``density.h5`` for writing (``state`` gives the grid and the data shape)."""
        self.storage.start_writing(state)
        self._writing = True

    def save(self, state: pde.ScalarField, t: float) -> None:
        """Append a snapshot and a diagnostics row at time ``t`` (both flushed)."""
        self.storage.append(state, time=t)
        self.csv.write(self.compute(state.data, t))

    def record(self, state: pde.ScalarField, t: float) -> None:
        """:meth:`save`, unless time ``t`` was saved already (the last good state of a
        failed or interrupted run)."""
        last = self.last_saved_time
        if last is not None and abs(t - last) <= 1e-12 * max(1.0, abs(t)):
            return
        self.save(state, t)

    def close(self) -> None:
        """Close ``density.h5`` and ``diagnostics.csv`` (idempotent)."""
        if self._writing:
            self.storage.end_writing()
            self._writing = False
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
