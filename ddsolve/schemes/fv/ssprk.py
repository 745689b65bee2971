"""Time steppers for :class:`~ddsolve.schemes.fv.pde.DistributionalDynamicsPDE`, as py-pde solvers.

:class:`SSPRKSolver` plugs into py-pde's :class:`~pde.Controller` (so py-pde trackers
and storages work unchanged) but steps with its own compiled loop: strong-stability-
preserving Runge–Kutta of order 1–3 (Shu & Osher 1988; Gottlieb, Shu & Tadmor, SIAM
Rev. 2001; the 3- and 4-stage methods of Spiteri & Ruuth 2002) in Shu–Osher form, with the step chosen from the positivity (CFL) and
diffusion bounds of :mod:`ddsolve.schemes.fv.pde`. Each stage is a forward-Euler step of the
positivity-preserving scheme, so the whole step preserves positivity.
"""

from __future__ import annotations

import math

import numpy as np
from pde.solvers.base import SolverBase

from ddsolve.failures import NumericalFailure
from ddsolve.schemes.fv.kernels import SSP_TABLES, STATUS_MESSAGES, STATUS_OK, advance, as_2d, make_workspace
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.stepping import Resumable

__all__ = ["SolverFailure", "SSPRKSolver"]


class SolverFailure(NumericalFailure):
    """A PDE run stopped on a numerical failure. ``t`` is the time of the last good state,
    which the solver leaves in the state it was stepping (py-pde's ``Controller`` steps a
    copy: find it in ``controller.diagnostics["last_state"]``)."""


class SSPRKSolver(Resumable, SolverBase):
    """Adaptive SSP Runge–Kutta stepping of the finite-volume scheme.

    Parameters
    ----------
    pde : DistributionalDynamicsPDE
    rk_order : int
        1 (forward Euler), 2 (SSPRK(3,2)) or 3 (SSPRK(4,3), Spiteri & Ruuth 2002); the
        last two have SSP coefficient 2 (see :data:`ddsolve.schemes.fv.pde.SSP_TABLES`).
    cfl : float
        Fraction in (0, 1] of the positivity and diffusion step bounds.
    dt_max : float, optional
        Upper bound on the step (default: none).
    dt_min : float
        A bound-driven step below this is a failure ("dt collapse").
    """

    name = "ssprk"

    def __init__(self, pde: DistributionalDynamicsPDE, rk_order: int = 3, cfl: float = 0.9,
                 dt_max: float | None = None, dt_min: float = 1e-14, **kwargs) -> None:
        super().__init__(pde, **kwargs)
        if rk_order not in SSP_TABLES:
            raise ValueError(f"rk_order must be one of {sorted(SSP_TABLES)}, got {rk_order}")
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must lie in (0, 1], got {cfl}")
        self.rk_order = int(rk_order)
        self.cfl = float(cfl)
        self.dt_max = math.inf if dt_max is None else float(dt_max)
        self.dt_min = float(dt_min)
        self.info.update(rk_order=self.rk_order, cfl=self.cfl, dt_adaptive=True)

    def make_stepper(self, state, dt=None):
        eq: DistributionalDynamicsPDE = self.pde
        table = SSP_TABLES[self.rk_order]
        scheme = eq.scheme_tuple(self.cfl, self.dt_min)
        work = make_workspace(eq.shape2d, eq.two_d)
        dt_max = self.dt_max if dt is None else min(self.dt_max, float(dt))
        self.info.update(steps=0, limited_cells=0, dt=None, dt_last=None)
        self.info["backend"] = "numba (ddsolve.schemes.fv.pde)"

        def stepper(state, t_start: float, t_end: float) -> float:
            rho = np.ascontiguousarray(as_2d(state.data))
            status, t, steps, dt_last, limited = advance(
                rho, float(t_start), float(t_end), dt_max, table, eq.inter, eq.V2, eq.log_m2,
                eq.temperature, eq.sched, eq.geom, scheme, work, self._pause_limit())
            state.data[...] = rho.reshape(state.data.shape)
            self.info["steps"] += int(steps)
            self.info["limited_cells"] += int(limited)
            if dt_last > 0:
                self.info["dt_last"] = float(dt_last)
            if status != STATUS_OK:
                cause = STATUS_MESSAGES[status]
                raise SolverFailure(
                    f"{cause} at t={t:.6g} (after {self.info['steps']} steps, last dt={dt_last:.3g})",
                    t=float(t), cause=cause)
            return float(t)

        return stepper

    def estimate_steps(self, data, t0: float, t_span: float) -> tuple[float, str] | None:
        """From the first step's bound (one step taken on a copy of ``data``)."""
        eq: DistributionalDynamicsPDE = self.pde
        rho = np.array(as_2d(np.asarray(data, dtype=float)), dtype=float, order="C")
        status, _, _, dt, _ = advance(
            rho, float(t0), float(t0) + float(t_span), self.dt_max, SSP_TABLES[self.rk_order], eq.inter,
            eq.V2, eq.log_m2, eq.temperature, eq.sched, eq.geom, eq.scheme_tuple(self.cfl, 0.0),
            make_workspace(eq.shape2d, eq.two_d), 1)
        if status != STATUS_OK or not dt > 0:
            return None  # one step covers the run, or the first step fails (reported when run)
        return float(t_span) / dt, f"the first step's CFL/diffusion bound dt = {dt:.3g}"

    def checkpoint_state(self) -> dict:
        # a step depends on the state and the time only: the counters are all there is
        return {"steps": int(self.info["steps"]), "limited_cells": int(self.info["limited_cells"]),
                "dt_last": self.info["dt_last"] if self.info["dt_last"] is not None else -1.0}

    def restore_state(self, data) -> None:
        self.info.update(steps=int(data["steps"]), limited_cells=int(data["limited_cells"]),
                         dt_last=None if float(data["dt_last"]) < 0 else float(data["dt_last"]))
