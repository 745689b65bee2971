"""The step loop shared by the implicit time steppers (implicit FV, JKO), and the protocol
by which a run pauses and resumes any stepper.

:func:`march` goes from ``t`` to ``t_end`` with a step that is halved when a step is
refused and grows back after accepted ones, the last step shortened so that it lands on
``t_end`` exactly (not an ulp short of it, which would leave a saved time unequal to the
requested one).

:class:`Resumable` is what a run's time loop (:mod:`ddsolve.app.timeloop`) asks of a
solver: with ``pause_steps = n`` its stepper returns after at most ``n`` accepted steps,
at the time reached (below ``t_end``), so that the loop can look at signals and write
checkpoints while compiled code is stepping; :meth:`Resumable.checkpoint_state` and
:meth:`Resumable.restore_state` carry everything the stepper remembers between steps
(step size, previous state, cached rates, counters). Pausing never shortens a step, so
a run paused any number of times, or stopped and resumed from a checkpoint, takes the
same steps as one that never paused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ddsolve.failures import NumericalFailure

__all__ = ["march", "Resumable"]


class Resumable:
    """Mixin of the solvers whose runs can pause and resume (module docstring).

    ``checkpoint_state`` returns NumPy arrays and Python scalars only; ``restore_state``
    is called after ``make_stepper`` (which resets a solver) and before the first step.
    """

    pause_steps: int | None = None

    def checkpoint_state(self) -> dict[str, Any]:
        """What the stepper remembers between steps, as arrays and scalars."""
        raise NotImplementedError

    def restore_state(self, data: Mapping[str, Any]) -> None:
        """Set what :meth:`checkpoint_state` returned."""
        raise NotImplementedError

    def estimate_steps(self, data, t0: float, t_span: float) -> tuple[float, str] | None:
        """``(steps, how)``: the steps a run of length ``t_span`` from ``data`` at ``t0``
        will take, estimated before it starts, or ``None`` if the solver cannot tell (an
        error-controlled step); a run refuses to start above its step budget."""
        return None

    def _pause_limit(self) -> int:
        """Steps the next stepper call may take (``pause_steps``, or unlimited)."""
        return 2**62 if self.pause_steps is None else max(1, int(self.pause_steps))


def march(t: float, t_end: float, dt: float, attempt: Callable[[float, float, float], bool], *,
          dt_min: float, fail: Callable[[float, float], None], dt_max: float | None = None,
          growth: float = math.inf, max_steps: int | None = None) -> tuple[float, float]:
    """Advance from ``t`` to ``t_end``, or by ``max_steps`` accepted steps if that comes
    first; returns the time reached and the step to go on with.

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
    max_steps : int, optional
        Pause after this many accepted steps (the returned time is then below ``t_end``).
    """
    dt_max = dt if dt_max is None else dt_max
    taken = 0
    while t < t_end - 1e-13 * max(1.0, abs(t_end)):
        if max_steps is not None and taken >= max_steps:
            return t, dt
        dt_try = min(dt, t_end - t)
        if t_end - t - dt_try <= 1e-9 * dt_try:
            dt_try = t_end - t
        last = dt_try == t_end - t
        if not last and t + dt_try == t:
            raise NumericalFailure(f"time step {dt_try:.3g} is below the resolution of t={t:.17g}",
                                   t=t, cause="dt below the resolution of t")
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
        taken += 1
    return t_end, dt
