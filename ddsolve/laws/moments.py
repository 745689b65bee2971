"""Coordinate moments of a law, the ``mean_<name>``, ``m2_<name>`` columns of every run.

For a law given by points :math:`x_i` with weights :math:`w_i \\ge 0` (a density's cell
centres and cell masses on a grid, or N equally weighted particles),

.. math:: \\mathrm{mean}_k = \\frac{\\sum_i w_i x_{i,k}}{\\sum_i w_i}, \\qquad
          \\mathrm{m2}_k = \\frac{\\sum_i w_i x_{i,k}^2}{\\sum_i w_i}

(second moments about 0), so a PDE run and a particle run of the same model write
comparable columns under the same names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["coordinate_moments"]


def coordinate_moments(points: np.ndarray, names: Sequence[str],
                       weights: np.ndarray | None = None) -> dict[str, float]:
    """``{"mean_<name>": ..., "m2_<name>": ...}`` of the weighted points.

    Parameters
    ----------
    points : ndarray, shape (..., ndim)
        Coordinates, the last axis in the order of ``names``.
    names : sequence of str, length ndim
    weights : ndarray, shape (...), optional
        Non-negative weights (default: equal).
    """
    x = np.asarray(points, dtype=float).reshape(-1, len(names))
    w = None if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    out = {}
    for k, name in enumerate(names):
        out[f"mean_{name}"] = float(np.average(x[:, k], weights=w))
        out[f"m2_{name}"] = float(np.average(x[:, k] ** 2, weights=w))
    return out
