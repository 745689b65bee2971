r"""Minimising-movement time stepping as a py-pde solver, with adaptive :math:`\tau`.

The schedule enters through the step's own time: the flow
:math:`\partial_t\rho = \xi(t)\nabla\cdot(\rho\nabla\mu)` is the gradient flow in the
time :math:`s = \int\xi\,dt`, so a step from :math:`t` to :math:`t+\Delta t` is the JKO
step with :math:`\tau = \int_t^{t+\Delta t}\xi` (Gauss–Legendre, exact for the
constant and power schedules to round-off at the step sizes used).

Every accepted step is checked against the discrete JKO inequality
:math:`F_h(\rho^{n+1}) + d^2(\rho^{n+1},\rho^n)/(2\tau) \le F_h(\rho^n)` (first order) or
the monotone decay of :math:`F_h` (BDF2, where the minimising-movement inequality holds
for a modified energy only, Matthes & Plazotta 2019); the counts of violations and the
largest relative one are in ``info``. A step whose inner solver fails is rejected and
retried with half the step (restart from the last accepted state); after an accepted step
the step grows by ``growth`` up to ``dt_max`` (default: the initial step ``dt``), so the
user's step is the step taken whenever the inner solver can take it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pde.solvers.base import SolverBase

from ddsolve.failures import NumericalFailure
from ddsolve.schemes.stepping import Resumable, march

__all__ = ["JKOSolver", "JKOFailure", "QuantileFile", "QUANTILE_FILE"]

QUANTILE_FILE = "quantiles.h5"
_GAUSS = np.polynomial.legendre.leggauss(4)


class JKOFailure(NumericalFailure):
    """A JKO run stopped because the inner solver failed even at ``dt_min``."""


class _Placeholder:
    """The py-pde ``PDEBase`` slot of the solver (JKO has no right-hand side)."""

    check_implementation = False
    complex_valued = False

    def __init__(self, method: Any) -> None:
        self.method = method


class JKOSolver(Resumable, SolverBase):
    r"""Minimising-movement stepping of a JKO ``method`` (Lagrangian or finite volume).

    Parameters
    ----------
    method : LagrangianJKO or FiniteVolumeJKO
        ``initial_state``, ``step``, ``density``, ``free_energy``.
    schedule : Schedule
        :math:`\xi(t)`.
    dt : float
        The initial (and, by default, largest) step.
    time_order : int
        1: JKO (backward Euler); 2: variational BDF2 (methods that support it).
    dt_max, dt_min : float, optional
        Largest step; a step halved below ``dt_min`` is a failure.
    growth : float
        Factor by which the step grows after an accepted step (towards ``dt_max``).

    Examples
    --------
    >>> solver = JKOSolver(LagrangianJKO(gm), gm.model.xi, dt=0.05)   # doctest: +SKIP
    >>> pde.Controller(solver, t_range=1.0).run(gm.coords.field(rho0))  # doctest: +SKIP
    """

    name = "jko"

    def __init__(self, method: Any, schedule: Any, dt: float, time_order: int = 1,
                 dt_max: float | None = None, dt_min: float = 1e-12, growth: float = 2.0,
                 check_tol: float = 1e-10) -> None:
        super().__init__(_Placeholder(method))
        if time_order not in (1, 2):
            raise ValueError(f"time_order must be 1 or 2, got {time_order}")
        if time_order == 2 and not getattr(method, "supports_bdf2", False):
            raise ValueError(f"time_order = 2 (BDF2) needs the Lagrangian method, not {method.name!r}")
        self.method = method
        self.schedule = schedule
        self.dt = float(dt)
        self.dt_max = self.dt if dt_max is None else float(dt_max)
        if self.dt_max < self.dt:
            raise ValueError(f"dt_max ({self.dt_max}) must be at least dt ({self.dt})")
        self.dt_min = float(dt_min)
        self.growth = float(growth)
        self.time_order = int(time_order)
        self.check_tol = float(check_tol)
        self.lagrangian_state: np.ndarray | None = None
        self.info.update(method=method.name, time_order=self.time_order, tau0=self.dt,
                         dt_max=self.dt_max)

    def step_length(self, t: float, dt: float) -> float:
        r""":math:`\tau = \int_t^{t+\Delta t}\xi`."""
        if self.schedule.is_constant:
            return float(self.schedule(t)) * dt
        x, w = _GAUSS
        return 0.5 * dt * float(sum(wk * self.schedule(t + 0.5 * dt * (xk + 1)) for xk, wk in zip(x, w)))

    def make_stepper(self, state, dt=None):
        method = self.method
        if dt is not None:
            self.dt = float(dt)
        self.lagrangian_state = method.initial_state(np.asarray(state.data, dtype=float))
        state.data[...] = method.density(self.lagrangian_state).reshape(state.data.shape)
        self.info.update(steps=0, rejected=0, inner_iterations=0, max_inner_iterations=0,
                         energy_increases=0, jko_violations=0, max_violation=0.0, dt_last=None)
        self._history = None  # (time, previous state, previous tau) for BDF2
        self._current = self.dt
        self._energy = method.free_energy(self.lagrangian_state)  # F of the current state

        def stepper(state, t_start: float, t_end: float) -> float:
            shape = state.data.shape
            now = {"y": self.lagrangian_state, "F": self._energy}

            def attempt(t: float, dt: float, t_new: float) -> bool:
                y, tau, hist = now["y"], self.step_length(t, dt), self._history
                previous = None
                if self.time_order == 2 and hist is not None and hist[0] == t:
                    previous = (hist[1], hist[2])
                new, info = method.step(y, tau, previous) if previous else method.step(y, tau)
                self.info["inner_iterations"] += info["iterations"]
                self.info["max_inner_iterations"] = max(self.info["max_inner_iterations"], info["iterations"])
                if new is None:
                    self.info["rejected"] += 1
                    now["reason"] = info["reason"]
                    return False
                F_new = info["free_energy"] if "free_energy" in info else method.free_energy(new)
                self._check(now["F"], F_new, info["distance2"], tau, previous is not None)
                self._history = (t_new, y, tau)
                now.update(y=new, F=F_new)
                self.info["steps"] += 1
                self.info["dt_last"] = dt
                return True

            def fail(t: float, dt: float) -> None:
                state.data[...] = method.density(now["y"]).reshape(shape)
                raise JKOFailure(f"JKO inner solver failed at t={t:.6g} ({now['reason']}) even with "
                                 f"dt={dt:.3g}", t=t, cause="inner solver failure")

            try:
                t, self._current = march(float(t_start), float(t_end), self._current, attempt,
                                         dt_min=self.dt_min, fail=fail, dt_max=self.dt_max,
                                         growth=self.growth, max_steps=self._pause_limit())
            finally:
                self.lagrangian_state, self._energy = now["y"], now["F"]
            state.data[...] = method.density(now["y"]).reshape(shape)
            return float(t)

        return stepper

    _COUNTERS = ("steps", "rejected", "inner_iterations", "max_inner_iterations", "energy_increases",
                 "jko_violations", "max_violation", "dt_last")

    def estimate_steps(self, data, t0: float, t_span: float) -> tuple[float, str] | None:
        return float(t_span) / self.dt_max, f"at least t_span / dt_max, dt_max = {self.dt_max:.3g}"

    def checkpoint_state(self) -> dict:
        out = {name: self.info[name] for name in self._COUNTERS if self.info.get(name) is not None}
        out.update(lagrangian_state=np.array(self.lagrangian_state), current_dt=self._current,
                   energy=self._energy)
        if self._history is not None:
            out.update(history_t=self._history[0], history_y=np.array(self._history[1]),
                       history_tau=self._history[2])
        return out

    def restore_state(self, data) -> None:
        self.info.update({name: data[name].item() if hasattr(data[name], "item") else data[name]
                          for name in self._COUNTERS if name in data})
        self.lagrangian_state = np.array(data["lagrangian_state"], dtype=float)
        self._current = float(data["current_dt"])
        self._energy = float(data["energy"])
        self._history = None
        if "history_y" in data:
            self._history = (float(data["history_t"]), np.array(data["history_y"], dtype=float),
                             float(data["history_tau"]))

    def _check(self, F_old: float, F_new: float, d2: float, tau: float, bdf2: bool) -> None:
        tol = self.check_tol * max(1.0, abs(F_old))
        if F_new > F_old + tol:
            self.info["energy_increases"] += 1
        excess = F_new + (0.0 if bdf2 else d2 / (2 * tau)) - F_old
        if excess > tol:
            self.info["jko_violations"] += 1
        self.info["max_violation"] = max(self.info["max_violation"], excess / max(1.0, abs(F_old)))

    def output_savers(self, path, keep: int | None = None) -> list[QuantileFile]:
        """``quantiles.h5`` with the atoms at the save times (Lagrangian method only);
        ``keep``: resume after the first ``keep`` rows of an existing file."""
        if not hasattr(self.method, "levels"):
            return []
        return [QuantileFile(self, Path(path) / QUANTILE_FILE, keep)]


class QuantileFile:
    """Writes the Lagrangian state to ``quantiles.h5`` at the save times, flushed per row:
    datasets ``t`` (n_t,), ``atoms`` (n_t, N), ``free_energy`` (n_t,) and, fixed,
    ``masses`` and ``levels`` (N,)."""

    def __init__(self, solver: JKOSolver, path, keep: int | None = None) -> None:
        import h5py

        self.solver = solver
        self.path = Path(path)
        method = solver.method
        n = method.n_atoms
        if keep is not None:
            self.file = h5py.File(self.path, "a")
            if self.file["t"].shape[0] < keep:
                raise ValueError(f"{self.path} has {self.file['t'].shape[0]} rows, the checkpoint saw {keep}")
            for name in ("t", "atoms", "free_energy"):
                self.file[name].resize(keep, axis=0)
            return
        self.file = h5py.File(self.path, "w")
        self.file.attrs["description"] = ("atoms y_i (positions of the quantile function at the mass "
                                          "levels s_i) of the Lagrangian JKO scheme")
        self.file.create_dataset("masses", data=method.masses)
        self.file.create_dataset("levels", data=method.levels)
        self.file.create_dataset("t", shape=(0,), maxshape=(None,), dtype=float)
        self.file.create_dataset("atoms", shape=(0, n), maxshape=(None, n), dtype=float, chunks=(1, n))
        self.file.create_dataset("free_energy", shape=(0,), maxshape=(None,), dtype=float)
        self.file.flush()

    def save(self, field, t: float) -> None:
        y = self.solver.lagrangian_state
        if y is None:
            y = self.solver.method.initial_state(np.asarray(field.data, dtype=float))
        k = self.file["t"].shape[0]
        for name, value in (("t", t), ("free_energy", self.solver.method.free_energy(y))):
            self.file[name].resize((k + 1,))
            self.file[name][k] = value
        self.file["atoms"].resize((k + 1, y.size))
        self.file["atoms"][k] = y
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
