r"""Implicit stepping of the finite-volume scheme with Newton's method.

For diffusion-dominated problems the explicit step is bound by
:math:`\Delta t \lesssim h^2\beta/2`. This solver takes steps set by accuracy:
backward Euler (first order) or variable-step BDF2 (second order),

.. math:: a_0\rho^{n+1} + a_1\rho^{n} + a_2\rho^{n-1} = \Delta t\,L_h(\rho^{n+1}, t_{n+1}),

(:math:`a = (1, -1, 0)` for backward Euler; :math:`a_0 = \frac{1+2\omega}{1+\omega},
a_1 = -(1+\omega), a_2 = \frac{\omega^2}{1+\omega}` with
:math:`\omega = \Delta t_n/\Delta t_{n-1}` for BDF2). Both conserve mass exactly, since
:math:`\sum_j L_h(\rho)_j = 0` and :math:`a_0+a_1+a_2 = 0`.

Each step is one solve of :math:`a_0\rho - \Delta t\,L_h(\rho) = r` by the compiled Newton
kernels of :mod:`ddsolve.schemes.fv.newton` (exact Jacobian, Thomas / Woodbury / GMRES,
positive iterates, mass restored to round-off), with the ``"upwind"`` (first order, any
:math:`\beta`), ``"logmean"`` or ``"sg"`` (Scharfetter–Gummel; both second order, finite
:math:`\beta`, discrete free-energy decay and exact discrete Gibbs state) face flux
described there. A step whose Newton
solve does not converge is retried with half the time step. For steps chosen by an error
estimate instead of a fixed ``dt`` see :mod:`ddsolve.schemes.fv.adaptive`.
"""

from __future__ import annotations

import numpy as np
from pde.solvers.base import SolverBase

from ddsolve.schemes.fv import newton as nw
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SolverFailure
from ddsolve.schemes.stepping import Resumable, march

__all__ = ["ImplicitEulerSolver"]


class ImplicitEulerSolver(Resumable, SolverBase):
    """Backward Euler or BDF2 with Newton on the implicit finite-volume system.

    Parameters
    ----------
    pde : DistributionalDynamicsPDE
        Must be built with ``order=1``; the spatial accuracy is set by ``flux``.
    dt : float
        Time step (the last step of each interval is shortened to land on it).
    time_order : int
        1 (backward Euler) or 2 (variable-step BDF2, started with one Euler step).
    flux : str
        A name in :data:`~ddsolve.schemes.fv.newton.FLUXES`: ``"upwind"`` (first order, any
        beta), ``"logmean"`` or ``"sg"`` (second order, finite beta).
    newton_tol : float
        Convergence when the residual's :math:`L^1` norm :math:`\\sum|R_j||C|` is below this.
    max_newton : int
        Newton iterations before the step is retried with half the step.
    dt_min : float
        Smallest step tried before giving up.
    """

    name = "implicit-newton"

    def __init__(self, pde: DistributionalDynamicsPDE, dt: float = 1e-2, time_order: int = 1,
                 flux: str = "upwind", newton_tol: float = 1e-11, max_newton: int = 30,
                 dt_min: float = 1e-12, **kwargs) -> None:
        super().__init__(pde, **kwargs)
        if pde.order != 1:
            raise ValueError("implicit stepping sets its spatial order through `flux`: build "
                             "DistributionalDynamicsPDE with order=1")
        if not dt > 0:
            raise ValueError(f"implicit dt must be positive, got {dt}")
        if time_order not in (1, 2):
            raise ValueError(f"implicit time_order must be 1 or 2, got {time_order}")
        self.dt = float(dt)
        self.time_order = int(time_order)
        self.newton_tol = float(newton_tol)
        self.max_newton = int(max_newton)
        self.dt_min = float(dt_min)
        self.prob = nw.make_problem(pde, flux)
        self.work = nw.make_newton_workspace(pde)
        self._history: tuple[float, np.ndarray, float] | None = None  # (t, rho, dt) of last step
        self.info.update(dt=self.dt, dt_adaptive=False, newton_iterations=0, steps=0,
                         retries=0, time_order=self.time_order, flux=flux,
                         backend="numba (ddsolve.schemes.fv.newton)")

    def _newton(self, a0: float, rhs: np.ndarray, guess: np.ndarray, t_new: float,
                dt: float) -> np.ndarray | None:
        """Solve ``a0 rho - dt L(rho, t_new) = rhs``; ``None`` if Newton fails."""
        shape = self.pde.shape2d
        z = np.array(guess, dtype=float).reshape(shape)
        rate = np.empty(shape)
        ok, its, lin, _ = nw.newton_solve(z, np.ascontiguousarray(rhs.reshape(shape)), float(a0),
                                          float(dt), float(t_new), self.prob, self.work, True,
                                          self.newton_tol, self.max_newton, rate, False)  # full Newton
        self.info["newton_iterations"] += int(its)
        return z.ravel() if ok else None

    def _step(self, rho: np.ndarray, t: float, dt: float) -> np.ndarray | None:
        hist = self._history
        if self.time_order == 2 and hist is not None and abs(hist[0] - t) <= 1e-12 * max(1, abs(t)):
            omega = dt / hist[2]
            a0 = (1 + 2 * omega) / (1 + omega)
            a1 = -(1 + omega)
            a2 = omega**2 / (1 + omega)
            rhs = -(a1 * rho + a2 * hist[1])
            return self._newton(a0, rhs, rho, t + dt, dt)
        return self._newton(1.0, rho, rho, t + dt, dt)

    def make_stepper(self, state, dt=None):
        if dt is not None:
            self.dt = float(dt)
            self.info["dt"] = self.dt
        self._history = None

        def stepper(state, t_start: float, t_end: float) -> float:
            shape = state.data.shape
            now = {"rho": np.array(state.data, dtype=float).ravel()}

            def attempt(t: float, dt: float, t_new: float) -> bool:
                rho = now["rho"]
                new = self._step(rho, t, dt)
                if new is None:
                    self.info["retries"] += 1
                    return False
                # the stored history is (time of rho^n, rho^{n-1}, dt_{n-1}) for BDF2
                self._history = (t_new, rho, t_new - t)
                now["rho"] = new
                self.info["steps"] += 1
                if not np.all(np.isfinite(new)):
                    raise SolverFailure(f"non-finite density at t={t_new:.6g}", t=t_new,
                                        cause="non-finite density")
                return True

            def fail(t: float, dt: float) -> None:
                state.data[...] = now["rho"].reshape(shape)
                raise SolverFailure(f"Newton did not converge at t={t:.6g} even with dt={dt:.3g}",
                                    t=t, cause="Newton failure")

            t, _ = march(float(t_start), float(t_end), self.dt, attempt, dt_min=self.dt_min, fail=fail,
                         max_steps=self._pause_limit())
            state.data[...] = now["rho"].reshape(shape)
            return float(t)

        return stepper

    _COUNTERS = ("steps", "newton_iterations", "retries")

    def estimate_steps(self, data, t0: float, t_span: float) -> tuple[float, str] | None:
        return float(t_span) / self.dt, f"the fixed step scheme.dt = {self.dt:.3g}"

    def checkpoint_state(self) -> dict:
        out = {name: int(self.info[name]) for name in self._COUNTERS}
        out["dt"] = self.dt
        if self._history is not None:
            out.update(history_t=self._history[0], history_rho=self._history[1],
                       history_dt=self._history[2])
        return out

    def restore_state(self, data) -> None:
        self.info.update({name: int(data[name]) for name in self._COUNTERS})
        self.dt = float(data["dt"])
        self._history = None
        if "history_rho" in data:
            self._history = (float(data["history_t"]), np.array(data["history_rho"], dtype=float),
                             float(data["history_dt"]))
