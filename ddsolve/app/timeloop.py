"""The time loop of a PDE run: a solver's stepper driven through the save times.

The loop calls ``stepper(state, t, t_save)`` for each save time in turn, and the stepper
lands on ``t_save`` exactly (the steppers shorten their last step to it), so every saved
time is the requested one at any magnitude of ``t``: no absolute time tolerance is used
anywhere. (py-pde's :class:`~pde.Controller`, which ran this loop before, compares times
with an absolute ``1e-12`` or with half a step; the first fails once an ulp of ``t``
exceeds it, near ``t = 16384``, and the final snapshot was then silently dropped; the
second skipped whole intervals for ``dt`` larger than them.)

Solvers that are :class:`~ddsolve.schemes.stepping.Resumable` pause every
``pause_steps`` steps, a number the loop adapts so that each call lasts about
``pause_seconds`` of wall time. At a pause the loop

* honours a SIGINT/SIGTERM that arrived meanwhile (:class:`~ddsolve.app.lifecycle.StopRequest`):
  the state reached is saved as the last snapshot, a checkpoint is written, and
  :class:`~ddsolve.failures.RunInterrupted` is raised, so Ctrl-C acts within about
  ``pause_seconds`` whatever ``save_every`` is;
* writes a checkpoint when ``checkpoint_every`` seconds have passed since the last one.
* enforces the step budget ``max_steps``: a run that has taken it stops with a
  :class:`~ddsolve.failures.NumericalFailure` (exit status 3); so does one whose recent
  steps project a total above the budget (checked after
  :data:`PROJECT_AFTER` steps): an error-controlled step held far below the time scale of
  the run, e.g. by round-off in a rate scaled by ``xi = 1e12``, would otherwise run for
  hours before reaching the budget.

Pausing never changes the steps taken (:mod:`ddsolve.schemes.stepping`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ddsolve.app.lifecycle import StopRequest
from ddsolve.failures import NumericalFailure, RunInterrupted
from ddsolve.schemes.stepping import Resumable

__all__ = ["TimeLoop", "PROJECT_AFTER"]

PROJECT_AFTER = 10_000
"""Steps after which the loop projects the run's total from its recent steps."""


class TimeLoop:
    """Drive ``solver`` from ``t`` through ``times[next_index:]``.

    Parameters
    ----------
    solver : py-pde solver
        Its ``make_stepper`` has been called: ``stepper`` is the result.
    stepper : callable
        ``stepper(state, t, t_end) -> t_reached``.
    times : sequence of float
        All save times of the run.
    save : callable
        ``save(state, t)``: write a snapshot and a row at a save time.
    stop : StopRequest
        The run's signal handling.
    checkpoint : callable, optional
        ``checkpoint(t, next_index)``: write a checkpoint of the state at ``t``.
    checkpoint_every : float
        Wall-clock seconds between checkpoints (``inf``: none).
    on_interrupt : callable, optional
        ``on_interrupt(state, t)``: save the state reached when a signal stops the run.
    progress : callable, optional
        ``progress(t, steps)`` after every call of the stepper.
    pause_seconds : float, optional
        Target wall time of one stepper call (default :attr:`PAUSE_SECONDS`).
    max_steps : int, optional
        The step budget (``run.max_steps``).
    """

    PAUSE_SECONDS = 0.2

    def __init__(self, solver: Any, stepper: Callable, times: Sequence[float], *,
                 save: Callable[[Any, float], None], stop: StopRequest,
                 checkpoint: Callable[[float, int], None] | None = None,
                 checkpoint_every: float = math.inf,
                 on_interrupt: Callable[[Any, float], None] | None = None,
                 progress: Callable[[float, int], None] | None = None,
                 pause_seconds: float | None = None, max_steps: int | None = None) -> None:
        self.solver = solver
        self.stepper = stepper
        self.times = np.asarray(times, dtype=float)
        self.save, self.stop = save, stop
        self.checkpoint = checkpoint if isinstance(solver, Resumable) else None
        self.checkpoint_every = float(checkpoint_every)
        self.on_interrupt = on_interrupt
        self.progress = progress
        self.pause_seconds = float(self.PAUSE_SECONDS if pause_seconds is None else pause_seconds)
        self.max_steps = max_steps
        self.t = float(self.times[0])
        self.next_index = 0
        self.checkpoints = 0
        self.projected: float | None = None
        """The total step count projected from the recent steps (after PROJECT_AFTER)."""

    def _steps(self) -> int:
        return int(self.solver.info.get("steps") or 0)

    def run(self, state: Any, t: float, next_index: int) -> float:
        """Step ``state`` from ``t``; returns the final time (``times[-1]``)."""
        self.t, self.next_index = float(t), int(next_index)
        resumable = isinstance(self.solver, Resumable)
        pause = 1  # grows by up to 4x per call towards pause_seconds
        last_checkpoint = time.perf_counter()
        mark = [self.t, self._steps()]  # start of the window the projection uses
        while self.next_index < len(self.times):
            t_save = float(self.times[self.next_index])
            if self.t < t_save:
                if resumable:
                    self.solver.pause_steps = pause
                steps0, wall0 = self._steps(), time.perf_counter()
                with self.stop.deferred():
                    reached = float(self.stepper(state, self.t, t_save))
                    self.t = t_save if reached >= t_save else reached
                taken, wall = self._steps() - steps0, time.perf_counter() - wall0
                if resumable and taken >= pause:  # a full call: rescale towards the target
                    scale = self.pause_seconds / max(wall, 1e-6)
                    pause = int(min(max(pause * min(max(scale, 0.25), 4.0), 1), 10**7))
                self._project(mark)
                if self.progress is not None:
                    self.progress(self.t, self._steps())
                if self.stop.requested:
                    self._interrupt(state)
                if self.t < t_save:
                    if time.perf_counter() - last_checkpoint >= self.checkpoint_every:
                        self._checkpoint()
                        last_checkpoint = time.perf_counter()
                    continue
            self.save(state, t_save)
            self.next_index += 1
            if (self.next_index < len(self.times)
                    and time.perf_counter() - last_checkpoint >= self.checkpoint_every):
                self._checkpoint()
                last_checkpoint = time.perf_counter()
        if resumable:
            self.solver.pause_steps = None
        return self.t

    def _project(self, mark: list) -> None:
        """Enforce the step budget (module docstring); ``mark`` is ``[t, steps]`` at the
        start of the current window, moved on every PROJECT_AFTER // 10 steps."""
        if self.max_steps is None:
            return
        steps = self._steps()
        if steps >= self.max_steps and self.t < self.times[-1]:
            raise NumericalFailure(f"step budget exhausted: {steps} steps by t={self.t:.6g} "
                                   f"(run.max_steps = {self.max_steps})", t=self.t, cause="step budget")
        window = steps - mark[1]
        if window < PROJECT_AFTER // 10:
            return
        if steps >= PROJECT_AFTER and self.t > mark[0]:
            self.projected = steps + (self.times[-1] - self.t) * window / (self.t - mark[0])
            if self.projected > self.max_steps:
                raise NumericalFailure(
                    f"the run would take about {self.projected:.3g} steps at its recent step size "
                    f"{(self.t - mark[0]) / window:.3g}, more than run.max_steps = {self.max_steps}",
                    t=self.t, cause="step budget")
        mark[0], mark[1] = self.t, steps

    def _checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint(self.t, self.next_index)
            self.checkpoints += 1

    def _interrupt(self, state: Any) -> None:
        """Checkpoint, save the state reached as the last snapshot, and stop."""
        self._checkpoint()
        if self.on_interrupt is not None:
            self.on_interrupt(state, self.t)
        raise RunInterrupted(self.t, self.stop.signal or "SIGINT")
