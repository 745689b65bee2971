r"""Step-size schedules :math:`\xi(t)`.

The package-wide time convention (see :mod:`ddsolve.model.base`) is

.. math:: \partial_t\rho = \xi(t)\,\nabla\cdot\big(\rho\nabla(\Psi[\rho] + \beta^{-1}\log(\rho/m))\big).

For SGD on a two-layer net in the normalisation of Mei, Montanari & Nguyen (PNAS 2018),
step :math:`s_k = \varepsilon\,\xi_{\rm MMN}(k\varepsilon)` corresponds to PDE time
:math:`t = k\varepsilon` and :math:`\xi(t) = 2\,\xi_{\rm MMN}(t)`; problems convert at
that seam. Schedules are encoded as ``(code, params)`` so compiled steppers evaluate
them without calling back into Python.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

__all__ = ["Schedule", "schedule_value", "schedule_integral"]

_CONSTANT, _POWER, _TABLE = 0, 1, 2


@nb.njit(cache=True, error_model="numpy", inline="always")
def schedule_value(code: int, params: np.ndarray, t: float) -> float:
    """Evaluate an encoded schedule at time ``t`` (compiled; see :class:`Schedule`).

    Inlined into the compiled kernels, with the piecewise-linear case a call
    (:func:`_piecewise_value`): a call that may raise keeps the reference counts of the
    caller's arrays from pairing up (``ddsolve.schemes.fv.newton``, module doc)."""
    if code == _CONSTANT:
        return params[0]
    if code == _POWER:
        return params[0] * (1.0 + t / params[1]) ** (-params[2])
    return _piecewise_value(params, t)


@nb.njit(cache=True)
def _piecewise_value(params: np.ndarray, t: float) -> float:
    """:func:`schedule_value` of a piecewise-linear schedule (knots, then values)."""
    n = params.size // 2
    return np.interp(t, params[:n], params[n:])


def schedule_integral(code: int, params: np.ndarray, t0: float, t1: float) -> float:
    r"""Exactly :math:`\int_{t_0}^{t_1}\xi(t)\,dt` for an encoded schedule (the "time" a
    linear autonomous operator :math:`\xi(t)A` advances by over the interval).

    Examples
    --------
    >>> s = Schedule.power(2.0, 1.0, 1.0)
    >>> round(schedule_integral(s.code, s.params, 0.0, math.e - 1.0), 12)
    2.0
    """
    t0, t1 = float(t0), float(t1)
    if code == _CONSTANT:
        return float(params[0]) * (t1 - t0)
    if code == _POWER:
        xi0, tau, p = (float(v) for v in params[:3])
        a, b = 1.0 + t0 / tau, 1.0 + t1 / tau
        if p == 1.0:
            return xi0 * tau * math.log(b / a)
        return xi0 * tau * (b ** (1.0 - p) - a ** (1.0 - p)) / (1.0 - p)
    n = params.size // 2
    times = np.asarray(params[:n], dtype=float)
    inside = times[(times > t0) & (times < t1)]
    knots = np.concatenate([[t0], inside, [t1]])  # piecewise linear between the knots: exact
    vals = np.interp(knots, times, params[n:])
    return float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(knots)))


class Schedule:
    r"""A positive schedule :math:`\xi(t)`.

    Use the constructors :meth:`constant`, :meth:`power` (:math:`\xi_0(1+t/t_0)^{-p}`)
    and :meth:`table` (piecewise linear through given points, constant outside).
    """

    def __init__(self, code: int, params, description: dict[str, Any]):
        self.code = int(code)
        self.params = np.ascontiguousarray(params, dtype=float)
        self.description = description

    @classmethod
    def constant(cls, value: float = 1.0) -> Schedule:
        if not value > 0:
            raise ValueError(f"xi must be positive, got {value}")
        return cls(_CONSTANT, [value], {"kind": "constant", "value": float(value)})

    @classmethod
    def power(cls, xi0: float, t0: float, p: float) -> Schedule:
        if not (xi0 > 0 and t0 > 0 and p >= 0):
            raise ValueError(f"power schedule needs xi0 > 0, t0 > 0, p >= 0; got {xi0}, {t0}, {p}")
        return cls(_POWER, [xi0, t0, p], {"kind": "power", "xi0": xi0, "t0": t0, "p": p})

    @classmethod
    def table(cls, times, values) -> Schedule:
        times, values = np.asarray(times, float), np.asarray(values, float)
        if times.shape != values.shape or times.ndim != 1 or times.size < 1:
            raise ValueError("schedule table needs equal-length 1D 'times' and 'values'")
        if np.any(np.diff(times) <= 0) or np.any(values <= 0):
            raise ValueError("schedule table needs increasing times and positive values")
        return cls(_TABLE, np.concatenate([times, values]),
                   {"kind": "table", "times": times.tolist(), "values": values.tolist()})

    @classmethod
    def from_spec(cls, spec) -> Schedule:
        """From a number (constant), a :class:`Schedule`, or a dict with ``kind``."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls.constant(float(spec))
        if isinstance(spec, dict):
            spec = dict(spec)
            kind = spec.pop("kind", None)
            makers = {"constant": cls.constant, "power": cls.power, "table": cls.table}
            if kind not in makers:
                raise ValueError(f"xi.kind must be one of {sorted(makers)}, got {kind!r}")
            return makers[kind](**spec)
        raise ValueError(f"xi must be a positive number or a table with 'kind', got {spec!r}")

    @property
    def is_constant(self) -> bool:
        return self.code == _CONSTANT

    def __call__(self, t: float) -> float:
        return float(schedule_value(self.code, self.params, float(t)))

    def __repr__(self) -> str:
        return f"Schedule({self.description})"
