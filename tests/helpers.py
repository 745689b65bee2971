"""Shared helpers for the numerics tests."""

from __future__ import annotations

import numpy as np


def observed_orders(hs, errors) -> np.ndarray:
    """Successive observed orders log(e_k/e_{k+1}) / log(h_k/h_{k+1})."""
    hs, errors = np.asarray(hs, float), np.asarray(errors, float)
    return np.log(errors[:-1] / errors[1:]) / np.log(hs[:-1] / hs[1:])


def l1(coords, a, b) -> float:
    return float(np.sum(np.abs(a - b)) * coords.cell_volume)
