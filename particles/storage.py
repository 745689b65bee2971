"""``particles.h5``: particle snapshots with their PDE times.

Layout (HDF5, written and flushed snapshot by snapshot, so a failed run keeps what it
wrote)::

    /t             (S,)           PDE time of each snapshot
    /step          (S,)           step index (t = step * dt)
    /coordinates   (S, N, k)      particles in the PDE model's coordinates
    /vectors       (S, N, D)      full states (e.g. w_i in R^d), if they differ
    attrs: names (coordinate names, JSON), method, n, dt, config (JSON),
           count (snapshots complete: updated with every flush)

A run killed at any moment (``kill -9`` included) leaves the file as it was at its last
flush, i.e. with every complete snapshot: a snapshot's datasets are extended and written,
then ``count`` is raised and the file flushed. :func:`load_particles` reads the first
``count`` snapshots (the datasets may be one longer if the kill came between the writes
of a snapshot, or if the file was not flushed in order); ``--resume`` cuts the file back
to the snapshots its checkpoint had seen (:class:`ParticleFile` with ``keep``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ddsolve.app.io import jsonable

__all__ = ["PARTICLES_FILE", "ParticleFile", "ParticleSnapshots", "load_particles", "snapshot_count",
           "read_coordinates"]

PARTICLES_FILE = "particles.h5"
_DATASETS = ("t", "step", "coordinates", "vectors")


def snapshot_count(h5: h5py.File) -> int:
    """The number of complete snapshots of an open ``particles.h5``: its ``count``
    attribute (files written before it existed: the datasets' length), never more than
    any dataset holds."""
    lengths = [h5[name].shape[0] for name in _DATASETS if name in h5]
    count = h5.attrs.get("count")
    known = [int(count)] if count is not None else []
    return min(lengths + known) if (lengths or known) else 0


class ParticleFile:
    """Append-only writer of ``particles.h5``.

    Parameters
    ----------
    path : path-like
    names : sequence of str
        Coordinate names.
    attrs : dict
        Extra attributes (JSON-encoded if not scalars).
    keep : int, optional
        Reopen an existing file, keep its first ``keep`` snapshots and append after them
        (``--resume``); ``ValueError`` if it has fewer. Default: a new file.
    """

    def __init__(self, path: str | Path, names, attrs: dict[str, Any] | None = None,
                 keep: int | None = None) -> None:
        self.path = Path(path)
        if keep is not None:
            self._h5 = h5py.File(self.path, "a")
            try:
                have = snapshot_count(self._h5)
                if have < keep:
                    raise ValueError(f"{self.path} has {have} snapshots, the checkpoint saw {keep}")
                for name in _DATASETS:
                    if name in self._h5:
                        self._h5[name].resize(keep, axis=0)
                self.count = int(keep)
                self._h5.attrs["count"] = self.count
                self._h5.flush()
            except BaseException:
                self._h5.close()
                raise
            return
        self._h5 = h5py.File(self.path, "w")
        self._h5.attrs["names"] = json.dumps(list(names))
        for key, value in (attrs or {}).items():
            self._h5.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(jsonable(value))
        self.count = 0
        self._h5.attrs["count"] = 0
        self._h5.flush()

    def _append(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=float)
        if name not in self._h5:
            self._h5.create_dataset(name, shape=(0, *value.shape), maxshape=(None, *value.shape),
                                    dtype="f8", chunks=(1, *value.shape))
        ds = self._h5[name]
        ds.resize(self.count + 1, axis=0)
        ds[self.count] = value

    def write(self, t: float, step: int, coordinates: np.ndarray, vectors: np.ndarray | None = None) -> None:
        """Append one snapshot and flush."""
        self._append("t", np.float64(t))
        self._append("step", np.float64(step))
        self._append("coordinates", coordinates)
        if vectors is not None:
            self._append("vectors", vectors)
        self.count += 1
        self._h5.attrs["count"] = self.count
        self._h5.flush()

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.close()


@dataclass
class ParticleSnapshots:
    """Contents of a ``particles.h5`` file."""

    t: np.ndarray
    step: np.ndarray
    coordinates: np.ndarray
    vectors: np.ndarray | None
    names: tuple[str, ...]
    attrs: dict[str, Any]


def _file(path: str | Path) -> Path:
    path = Path(path)
    return path / PARTICLES_FILE if path.is_dir() else path


def load_particles(path: str | Path) -> ParticleSnapshots:
    """Read ``particles.h5`` (a file or the run directory holding it): its complete
    snapshots (:func:`snapshot_count`)."""
    with h5py.File(_file(path), "r") as h5:
        attrs = {k: (json.loads(v) if k in ("names", "config", "dynamics") else v) for k, v in h5.attrs.items()}
        attrs.pop("count", None)
        n = snapshot_count(h5)
        empty = np.zeros(0)
        return ParticleSnapshots(
            t=h5["t"][:n] if "t" in h5 else empty,
            step=h5["step"][:n].astype(int) if "step" in h5 else empty.astype(int),
            coordinates=h5["coordinates"][:n] if "coordinates" in h5 else empty,
            vectors=h5["vectors"][:n] if "vectors" in h5 else None,
            names=tuple(attrs.pop("names")),
            attrs=attrs,
        )


def read_coordinates(path: str | Path, which=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(t, coordinates)`` of the complete snapshots of ``particles.h5`` (or only those
    whose indices ``which(count)`` returns), without reading the vectors."""
    with h5py.File(_file(path), "r") as h5:
        n = snapshot_count(h5)
        if "t" not in h5 or n == 0:
            return np.zeros(0), []
        idx = list(range(n)) if which is None else list(which(n))
        return np.asarray(h5["t"][:n])[idx], [np.asarray(h5["coordinates"][i]) for i in idx]
