"""``checkpoint.npz``: what a run needs to continue after it was stopped, at any moment.

A checkpoint is one NumPy ``.npz`` archive holding the arrays of the run's state (the
density, the time integrator's memory: step size, previous state, cached stage rates;
the random generator's state for particles) and a JSON header (``__meta__``) with the
time reached, how many snapshots and diagnostics rows were saved by then, the counters
and the resolved config. It is written to ``checkpoint.npz.tmp``, flushed to disk and
renamed over the old one (``os.replace`` is atomic), so a run killed at any moment
leaves either the previous checkpoint or the new one, never a torn file.

``--resume`` reads it back (:func:`read_checkpoint`), checks that the config is the one
the checkpoint was made with, cuts the snapshot and diagnostics files back to what the
checkpoint had seen and continues; the runs it is tested on reach the same final state
as an uninterrupted run bit for bit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve.app.io import jsonable
from ddsolve.schema import ConfigError

__all__ = ["CHECKPOINT_FILE", "CHECKPOINT_FORMAT", "write_checkpoint", "read_checkpoint",
           "same_config"]

CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_FORMAT = 1

_META = "__meta__"


def write_checkpoint(path: str | Path, meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` and the JSON header ``meta`` atomically to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    header = json.dumps(jsonable({"format": CHECKPOINT_FORMAT, **meta}), allow_nan=False)
    with open(tmp, "wb") as fh:
        np.savez(fh, **{_META: np.array(header)}, **payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: str | Path, key: str = "--resume") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a checkpoint; a missing or unreadable one is a
    :class:`~ddsolve.schema.ConfigError` on ``key``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop(_META)))
    except FileNotFoundError:
        raise ConfigError(key, f"no checkpoint in {path.parent}") from None
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(key, f"cannot read the checkpoint {path}: {err}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(key, f"{path} has checkpoint format {meta.get('format')!r}; this ddsolve "
                               f"reads format {CHECKPOINT_FORMAT}")
    return meta, arrays


def same_config(stored: Mapping[str, Any], current: Mapping[str, Any],
                ignore: tuple[str, ...] = ()) -> str | None:
    """``None`` if the two resolved configs agree (as JSON, apart from the dotted keys in
    ``ignore``); otherwise the first key that differs."""
    a, b = jsonable(stored), jsonable(current)
    for dotted in ignore:
        section, _, name = dotted.partition(".")
        for cfg in (a, b):
            if isinstance(cfg.get(section), dict):
                cfg[section].pop(name, None)
    return _first_difference(a, b, "")


def _first_difference(a: Any, b: Any, prefix: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            found = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if found is not None:
                return found
        return None
    return None if a == b else prefix.rstrip(".")
