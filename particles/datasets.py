r"""Finite data sets for the particle runs.

The two-layer SGD dynamics draw their samples from a :class:`ddsolve.networks.data.DataLaw`
(``dim``, ``risk_offset`` :math:`=\mathbb{E}y^2`, ``sample(n, rng) -> (x, y)``).
:class:`EmpiricalData` is such a law for a finite data set: the uniform distribution on its
rows, so SGD with ``sample`` is SGD with replacement on the training set and the "population"
risk is the empirical (training) risk. Use :meth:`EmpiricalData.split` for a held-out test set.

Loaders:

* :func:`digits` — scikit-learn's bundled 8×8 handwritten digits (1797 images, 64 pixels
  with values 0..16; Alpaydin & Kaynak, UCI 1998). Works offline (the data ship with
  scikit-learn). A stand-in for the MNIST single-digit experiments of Tassopoulos (Imperial UROP report, 2023), §2.2/§3.2.3.
* :func:`load_npz` — user-supplied arrays, e.g. MNIST saved as ``.npz``
  (``x_train``/``y_train`` as in ``keras.datasets.mnist``).

Both return ``(x, y)`` float arrays with ``x`` of shape ``(n, features)`` (images are
flattened) and share the options

``classes``
    ``None``: all rows, ``y`` the original labels (as floats). Two classes ``(a, b)``: only
    their rows, ``y = +1`` for ``a`` and ``y = -1`` for ``b`` (binary classification with
    square loss, as in Mei, Montanari & Nguyen 2018). More classes: their rows, original labels.
``normalize``
    ``"standard"`` (or ``True``): every feature shifted to zero mean and scaled to unit
    variance over the returned rows; constant features (e.g. always-blank border pixels) become
    0. ``"unit"``: affine map of all values to :math:`[0,1]` by the global minimum and maximum
    (for the digits: pixel/16). ``"none"`` (or ``False``): the raw values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ddsolve.networks.data import DataLaw

__all__ = ["digits", "load_npz", "EmpiricalData", "DatasetKeyError", "NORMALIZATIONS"]

NORMALIZATIONS = ("standard", "unit", "none")

_X_KEYS = ("x", "x_train", "X", "X_train")
_Y_KEYS = ("y", "y_train", "Y", "Y_train", "labels")


class DatasetKeyError(KeyError):
    """A requested array is not in the file (the message lists the arrays found)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _normalization(normalize) -> str:
    if normalize is True:
        return "standard"
    if normalize is False or normalize is None:
        return "none"
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be True, False or one of {NORMALIZATIONS}, "
                         f"got {normalize!r}")
    return normalize


def _prepare(x, y, classes, normalize) -> tuple[np.ndarray, np.ndarray]:
    """Flatten, select classes, relabel and normalise (module docstring)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 1:
        x = x[:, None]
    x = x.reshape(x.shape[0], -1).astype(float)
    y = y.reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels")
    mode = _normalization(normalize)
    if classes is not None:
        cls = [c for c in np.atleast_1d(np.asarray(classes)).tolist()]
        if len(cls) < 2 or len(set(cls)) != len(cls):
            raise ValueError(f"classes must list at least two distinct labels, got {classes!r}")
        present = set(np.unique(y).tolist())
        missing = [c for c in cls if c not in present]
        if missing:
            raise ValueError(f"classes {missing} do not occur in the labels "
                             f"(labels present: {sorted(present)})")
        keep = np.isin(y, cls)
        x, y = x[keep], y[keep]
        if len(cls) == 2:
            y = np.where(y == cls[0], 1.0, -1.0)
    y = y.astype(float)
    if mode == "standard":
        mu = x.mean(axis=0)
        sd = x.std(axis=0)
        x = (x - mu) / np.where(sd > 0, sd, 1.0)
    elif mode == "unit":
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x, y


def digits(classes: Sequence[int] | None = None, normalize: bool | str = True
           ) -> tuple[np.ndarray, np.ndarray]:
    r"""scikit-learn's 8×8 digits: ``x`` of shape ``(n, 64)``, ``y`` of shape ``(n,)``.

    ``classes=(a, b)`` keeps the two digits with ``y = +1`` for ``a`` and ``-1`` for ``b``
    (e.g. ``(0, 1)``: 360 images); ``None`` keeps all 1797 with labels 0..9. ``normalize``:
    ``True``/``"standard"`` (default) per-pixel zero mean and unit variance over the returned
    rows (blank pixels stay 0), ``"unit"`` pixel/16 in :math:`[0,1]`, ``False`` raw 0..16.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("digits() needs scikit-learn (the 8x8 digits ship with it): "
                          "pip install scikit-learn") from exc
    if classes is not None:
        bad = [c for c in np.atleast_1d(np.asarray(classes)).tolist()
               if not (isinstance(c, int) and 0 <= c <= 9)]
        if bad:
            raise ValueError(f"digit classes must be integers in 0..9, got {classes!r}")
    data = load_digits()
    return _prepare(data.data, data.target, classes, normalize)


def _pick(keys: Sequence[str], wanted: str, candidates: Sequence[str], what: str, path) -> str:
    if wanted in keys:
        return wanted
    if wanted == candidates[0]:
        for k in candidates[1:]:
            if k in keys:
                return k
        tried = "', '".join(candidates)
        raise DatasetKeyError(f"{path}: no {what} array found (tried '{tried}'); the file holds "
                       f"{sorted(keys)} — pass {what}_key=...")
    raise DatasetKeyError(f"{path}: no array named {wanted!r} for {what}; the file holds "
                          f"{sorted(keys)}")


def load_npz(path: str | os.PathLike, x_key: str = "x", y_key: str = "y", *,
             classes: Sequence | None = None, normalize: bool | str = False
             ) -> tuple[np.ndarray, np.ndarray]:
    r"""Features and labels from a ``.npz`` file (e.g. MNIST).

    With the default keys, ``x``/``y`` are looked up first, then the common alternatives
    ``x_train``, ``X``, ``X_train`` and ``y_train``, ``Y``, ``Y_train``, ``labels``; an explicit
    key must exist. A missing key raises :class:`DatasetKeyError` (a ``KeyError``) listing the
    arrays in the file. Images are flattened to rows. ``classes`` and ``normalize`` as in the
    module docstring (default: raw values; ``"unit"`` maps MNIST's 0..255 to :math:`[0,1]`).
    No pickled objects are loaded.
    """
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.files)
        xk = _pick(keys, x_key, _X_KEYS, "x", path)
        yk = _pick(keys, y_key, _Y_KEYS, "y", path)
        x, y = f[xk], f[yk]
    return _prepare(x, y, classes, normalize)


class EmpiricalData(DataLaw):
    r"""The uniform law on the rows of a finite data set :math:`\{(x_k, y_k)\}_{k\le n}`.

    ``sample(n, rng)`` draws ``n`` rows i.i.d. *with replacement* (indices
    ``rng.integers(0, size, n)``), so it is reproducible given the generator;
    ``risk_offset`` is :math:`\frac1n\sum_k y_k^2` (the risk of the zero predictor on this
    set). The arrays are stored as given (copied, float) in ``x`` (shape ``(size, dim)``) and
    ``y`` (shape ``(size,)``).

    Parameters
    ----------
    x : array_like, shape (n, dim) or (n,)
    y : array_like, shape (n,)
    name : str
    """

    def __init__(self, x, y, name: str = "empirical"):
        x = np.array(x, dtype=float)
        y = np.array(y, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, dim), got {x.shape}")
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"y must have shape ({x.shape[0]},), got {y.shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError("the data set must have at least one row and one feature")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("x and y must be finite")
        self.x = x
        self.y = y
        self.dim = x.shape[1]
        self.name = name

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def __len__(self) -> int:
        return self.size

    @property
    def risk_offset(self) -> float:
        return float(np.mean(self.y**2))

    def sample(self, n, rng):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        idx = rng.integers(0, self.size, size=int(n))
        return self.x[idx], self.y[idx]

    def split(self, fraction: float, rng: np.random.Generator
              ) -> tuple[EmpiricalData, EmpiricalData]:
        """A random partition into ``(train, test)`` with ``round(fraction*size)`` training
        rows (both parts non-empty)."""
        fraction = float(fraction)
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        k = int(round(fraction * self.size))
        if not 1 <= k <= self.size - 1:
            raise ValueError(f"fraction {fraction} of {self.size} rows leaves an empty part")
        perm = rng.permutation(self.size)
        tr, te = perm[:k], perm[k:]
        return (EmpiricalData(self.x[tr], self.y[tr], name=f"{self.name}-train"),
                EmpiricalData(self.x[te], self.y[te], name=f"{self.name}-test"))

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "dim": self.dim,
                "risk_offset": self.risk_offset}

    def __repr__(self) -> str:
        return f"EmpiricalData({self.name!r}, size={self.size}, dim={self.dim})"
