r"""The distributional-dynamics equation as a py-pde :class:`~pde.pdes.base.PDEBase`.

.. math:: \partial_t\rho = \xi(t)\nabla\cdot\big(\rho\nabla(\Psi[\rho]+\beta^{-1}\log(\rho/m))\big)

The right-hand side is the semi-discrete finite-volume scheme of Carrillo, Chertock &
Huang (CiCP 17, 2015), compiled in :mod:`ddsolve.schemes.fv.kernels` (which states the
positivity bound, CCH Thm 3.1, and the free-energy decay it relies on). This class hands
it to py-pde through ``make_evolution_rate``, so py-pde's ``Controller``, trackers and
storages drive it with any solver.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import pde
from pde.pdes.base import PDEBase

from ddsolve.grid.grid_model import GridModel
from ddsolve.grid.interaction import pack_operator
from ddsolve.model.schedule import schedule_value
from ddsolve.schemes.fv.kernels import as_2d, compute_psi, fv_rate, make_workspace

__all__ = ["DistributionalDynamicsPDE", "pack_interaction"]


def pack_interaction(gm: GridModel) -> tuple:
    """The ``inter`` tuple consumed by :func:`~ddsolve.schemes.fv.kernels.compute_psi`."""
    return pack_operator(gm.operator, gm.coords)


class DistributionalDynamicsPDE(PDEBase):
    r"""The distributional-dynamics equation as a py-pde PDE.

    .. math:: \partial_t\rho = \xi(t)\nabla\cdot\big(\rho\nabla(\Psi[\rho]+\beta^{-1}\log(\rho/m))\big)

    discretised by the finite-volume scheme of :mod:`ddsolve.schemes.fv.kernels`. Use it with py-pde's
    ``solve``/``Controller`` and any solver, or with :class:`ddsolve.schemes.fv.ssprk.SSPRKSolver`
    (adaptive, positivity preserving) and :class:`ddsolve.schemes.fv.implicit.ImplicitEulerSolver`.

    Parameters
    ----------
    grid_model : GridModel
    order : int
        1 (first-order upwind) or 2 (minmod-limited reconstruction).
    theta : float
        Generalised-minmod parameter in [1, 2].
    """

    check_implementation = False

    def __init__(self, grid_model: GridModel, order: int = 2, theta: float = 2.0) -> None:
        super().__init__()
        if order not in (1, 2):
            raise ValueError(f"scheme order must be 1 or 2, got {order}")
        if not 1.0 <= theta <= 2.0:
            raise ValueError(f"minmod theta must lie in [1, 2], got {theta}")
        self.grid_model = grid_model
        self.order = int(order)
        self.theta = float(theta)
        coords = grid_model.coords
        self.two_d = coords.ndim == 2
        h = coords.spacing
        per = coords.periodic
        self.geom = (float(h[0]), float(h[1] if self.two_d else 1.0),
                     bool(per[0]), bool(per[1] if self.two_d else False))
        self.inter = pack_interaction(grid_model)
        self.V2 = np.ascontiguousarray(as_2d(grid_model.V))
        self.log_m2 = np.ascontiguousarray(as_2d(grid_model.log_m))
        sched = grid_model.model.xi
        self.sched = (sched.code, sched.params)
        self.temperature = float(grid_model.temperature)
        self.shape2d = self.V2.shape

    def scheme_tuple(self, cfl: float = 0.9, dt_min: float = 0.0) -> tuple:
        return (self.theta, float(self.order), float(cfl), float(dt_min))

    def rate_data(self, rho: np.ndarray, t: float = 0.0) -> tuple[np.ndarray, float]:
        """Semi-discrete rate for a data array and the Courant rate (for tests/solvers)."""
        work = make_workspace(self.shape2d, self.two_d)
        rho2 = np.ascontiguousarray(as_2d(np.asarray(rho, dtype=float)))
        out = np.empty_like(rho2)
        psi = work[3]
        compute_psi(self.inter, rho2, self.V2, psi)
        xi = schedule_value(self.sched[0], self.sched[1], t)
        rate = fv_rate(rho2, (psi, self.log_m2, self.temperature, xi), self.geom,
                       self.scheme_tuple(), work[5], work[6], work[4], out)
        return out.reshape(np.shape(rho)), rate

    def evolution_rate(self, state: pde.ScalarField, t: float = 0) -> pde.ScalarField:
        rate, _ = self.rate_data(state.data, t)
        return pde.ScalarField(state.grid, rate, label="rate")

    def make_evolution_rate(self, state, backend):
        """Compiled rate for py-pde's numba backend; a NumPy-callable one otherwise."""
        inter, V2, log_m2, T = self.inter, self.V2, self.log_m2, self.temperature
        code, params = self.sched
        geom, scheme = self.geom, self.scheme_tuple()
        shape, two_d = state.data.shape, self.two_d
        n0, n1 = self.shape2d

        @nb.njit
        def rate(state_data, t):
            rho = state_data.reshape(n0, n1)
            psi = np.empty((n0, n1))
            phi = np.empty((n0, n1))
            Fx = np.zeros((n0 + 1, n1))
            Fy = np.zeros((n0, n1 + 1)) if two_d else np.zeros((0, 0))
            out = np.empty((n0, n1))
            compute_psi(inter, rho, V2, psi)
            xi = schedule_value(code, params, t)
            fv_rate(rho, (psi, log_m2, T, xi), geom, scheme, Fx, Fy, phi, out)
            return out.reshape(shape)

        if getattr(backend, "name", backend) == "numba":
            return rate
        return lambda data, t: rate(np.ascontiguousarray(data), t)

    def expression_info(self) -> dict[str, Any]:
        return {"order": self.order, "theta": self.theta}
