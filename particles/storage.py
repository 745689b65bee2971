"""``particles.h5``: particle snapshots with their PDE times.

Layout (HDF5, written and flushed snapshot by snapshot, so a failed run keeps what it
wrote)::

    /t             (S,)           PDE time of each snapshot
    /step          (S,)           step index (t = step * dt)
    /coordinates   (S, N, k)      particles in the PDE model's coordinates
    /vectors       (S, N, D)      full states (e.g. w_i in R^d), if they differ
    attrs: names (coordinate names, JSON), method, n, dt, config (JSON)

:func:`load_particles` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ddsolve.app.io import jsonable

__all__ = ["PARTICLES_FILE", "ParticleFile", "ParticleSnapshots", "load_particles"]

PARTICLES_FILE = "particles.h5"


class ParticleFile:
    """Append-only writer of ``particles.h5``.

    Parameters
    ----------
    path : path-like
    names : sequence of str
        Coordinate names.
    attrs : dict
        Extra attributes (JSON-encoded if not scalars).
    """

    def __init__(self, path: str | Path, names, attrs: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._h5 = h5py.File(self.path, "w")
        self._h5.attrs["names"] = json.dumps(list(names))
        for key, value in (attrs or {}).items():
            self._h5.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(jsonable(value))
        self.count = 0

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


def load_particles(path: str | Path) -> ParticleSnapshots:
    """Read ``particles.h5`` (a file or the run directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PARTICLES_FILE
    with h5py.File(path, "r") as h5:
        attrs = {k: (json.loads(v) if k in ("names", "config", "dynamics") else v) for k, v in h5.attrs.items()}
        empty = np.zeros(0)
        return ParticleSnapshots(
            t=h5["t"][()] if "t" in h5 else empty,
            step=h5["step"][()].astype(int) if "step" in h5 else empty.astype(int),
            coordinates=h5["coordinates"][()] if "coordinates" in h5 else empty,
            vectors=h5["vectors"][()] if "vectors" in h5 else None,
            names=tuple(attrs.pop("names")),
            attrs=attrs,
        )
