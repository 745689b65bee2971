"""The step loop shared by the implicit time steppers (implicit FV, JKO): march from ``t``
to ``t_end`` with a step that is halved when a step is refused and grows back after
accepted ones, the last step shortened so that it lands on ``t_end`` exactly (not an ulp
short of it, which would leave a saved time unequal to the requested one)."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["march"]


def march(t: float, t_end: float, dt: float, attempt: Callable[[float, float, float], bool], *,
          dt_min: float, fail: Callable[[float, float], None], dt_max: float | None = None,
          growth: float = math.inf) -> float:
    """Advance from ``t`` to ``t_end``; returns the step to start the next interval with.

    Parameters
    ----------
    attempt : callable
        ``attempt(t, dt, t_new) -> bool``: take the step (``t_new`` is ``t + dt``, or
        ``t_end`` exactly on the last step) and say whether it was accepted; the caller
        keeps its own state.
    dt_min : float
        A refused step is retried with half the step; below ``dt_min``, ``fail(t, dt)`` is
        called, which must raise.
    dt_max, growth : float
        After an accepted step of the full current size the step becomes
        ``min(dt_max, growth * dt)`` (``dt_max`` defaults to ``dt``; the default growth
        returns to ``dt_max`` at once).
    """
    dt_max = dt if dt_max is None else dt_max
    while t < t_end - 1e-13 * max(1.0, abs(t_end)):
        dt_try = min(dt, t_end - t)
        if t_end - t - dt_try <= 1e-9 * dt_try:
            dt_try = t_end - t
        last = dt_try == t_end - t
        while True:
            t_new = t_end if last else t + dt_try
            if attempt(t, dt_try, t_new):
                break
            dt_try *= 0.5
            last, dt = False, dt_try
            if dt_try < dt_min:
                fail(t, dt_try)
        if dt_try == dt:
            dt = min(dt_max, dt * growth)
        t = t_new
    return dt
