r"""Backward-Euler stepping of the finite-volume scheme with Newton's method.

For diffusion-dominated problems the explicit step is bound by
:math:`\Delta t \lesssim h^2\beta/2`. This solver takes steps of any size:

.. math:: \rho^{n+1} - \rho^n - \Delta t\,L_h(\rho^{n+1}, t_{n+1}) = 0,

with :math:`L_h` the first-order upwind finite-volume operator of
:mod:`ddsolve.fv` (Carrillo, Chertock & Huang, CiCP 17, 2015, §2 with zero slopes),
written with sparse matrices: per axis, the face difference operator :math:`G`
(:math:`(G\phi)_f = (\phi_{R(f)}-\phi_{L(f)})/h`), face velocities :math:`u=-G\phi`,
upwind fluxes :math:`F = u^+\rho_L + u^-\rho_R` and :math:`L_h(\rho) = \sum_a G_a^\top F_a`
(so :math:`\sum_j L_h(\rho)_j = 0`: mass is conserved by every Newton iterate).

The Jacobian is exact:

.. math:: J = \sum_a G_a^\top\Big[\mathrm{diag}(u^+)S_L + \mathrm{diag}(u^-)S_R
          - \mathrm{diag}(\rho_{\rm up})\,G_a\,\xi\big(\beta^{-1}\mathrm{diag}(1/\rho)
          + |C|\,K\big)\Big].

Its local part (everything but :math:`K`) is sparse and factorised with SuperLU; the
nonlocal part is applied matrix-free through the interaction operator, and the Newton
system is solved by GMRES preconditioned with the local factorisation (exact Newton:
quadratic convergence is kept). Without interaction the sparse system is solved
directly. With diffusion (:math:`\beta<\infty`) the Newton update is additive where it
keeps at least half of a cell's density and, where it would remove more, is taken in the
entropy variable :math:`s=\log\rho` (same linear system, update
:math:`\rho\leftarrow\rho\,e^{\delta/\rho}`), so iterates stay positive without the
stalling of a damped additive step in exponentially small tails.
A step that does not converge is retried with half the time step.
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from pde.solvers.base import SolverBase

from .discretization import DENSITY_FLOOR
from .fv import DistributionalDynamicsPDE
from .solvers import SolverFailure

__all__ = ["UpwindOperator", "ImplicitEulerSolver"]


class UpwindOperator:
    """First-order upwind finite-volume operator and its exact Jacobian.

    Parameters
    ----------
    eq : DistributionalDynamicsPDE
        Supplies the grid model (cell potentials, interaction, temperature, schedule).
    """

    def __init__(self, eq: DistributionalDynamicsPDE) -> None:
        self.eq = eq
        gm = eq.grid_model
        self.gm = gm
        coords = gm.coords
        shape = coords.shape
        M = coords.size
        self.M = M
        idx = np.arange(M).reshape(shape)
        self.axes = []
        for a, axis in enumerate(coords.axes):
            h = axis.spacing
            left = np.moveaxis(idx, a, 0)
            if axis.periodic:
                L, R = left.ravel(), np.roll(left, -1, axis=0).ravel()
            else:
                L, R = left[:-1].ravel(), left[1:].ravel()
            nf = L.size
            rows = np.arange(nf)
            G = sp.csr_matrix((np.r_[np.full(nf, -1.0 / h), np.full(nf, 1.0 / h)],
                               (np.r_[rows, rows], np.r_[L, R])), shape=(nf, M))
            SL = sp.csr_matrix((np.ones(nf), (rows, L)), shape=(nf, M))
            SR = sp.csr_matrix((np.ones(nf), (rows, R)), shape=(nf, M))
            self.axes.append((G, G.T.tocsr(), SL, SR, L, R))
        self.log_m = gm.log_m.ravel()
        self.V = gm.V.ravel()
        self.T = gm.temperature
        self.vol = coords.cell_volume

    def _phi(self, rho: np.ndarray, xi: float) -> np.ndarray:
        phi = self.gm.psi(rho.reshape(self.gm.coords.shape)).ravel()
        if self.T > 0:
            phi = phi + self.T * (np.log(np.maximum(rho, DENSITY_FLOOR)) - self.log_m)
        return xi * phi

    def rate(self, rho: np.ndarray, t: float) -> np.ndarray:
        """:math:`L_h(\\rho)` on flattened cell values."""
        phi = self._phi(rho, self.gm.model.xi(t))
        out = np.zeros(self.M)
        for G, GT, SL, SR, L, R in self.axes:
            u = -(G @ phi)
            out += GT @ (np.maximum(u, 0.0) * rho[L] + np.minimum(u, 0.0) * rho[R])
        return out

    def jacobian_parts(self, rho: np.ndarray, t: float):
        """Local sparse Jacobian and a function applying the nonlocal part."""
        xi = self.gm.model.xi(t)
        phi = self._phi(rho, xi)
        J = sp.csr_matrix((self.M, self.M))
        nonlocal_factors = []
        inv_rho = 1.0 / np.maximum(rho, DENSITY_FLOOR)
        for G, GT, SL, SR, L, R in self.axes:
            u = -(G @ phi)
            up = np.where(u > 0, rho[L], rho[R])
            J = J + GT @ (sp.diags(np.maximum(u, 0.0)) @ SL + sp.diags(np.minimum(u, 0.0)) @ SR)
            if self.T > 0:
                J = J - GT @ sp.diags(up) @ G @ sp.diags(xi * self.T * inv_rho)
            nonlocal_factors.append((GT, up, G))
        op = self.gm.operator
        shape = self.gm.coords.shape

        def nonlocal_matvec(v: np.ndarray) -> np.ndarray:
            if op is None:
                return np.zeros_like(v)
            dpsi = xi * op.apply(v.reshape(shape)).ravel()
            out = np.zeros_like(v)
            for GT, up, G in nonlocal_factors:
                out -= GT @ (up * (G @ dpsi))
            return out

        return J.tocsc(), (None if op is None else nonlocal_matvec)


class ImplicitEulerSolver(SolverBase):
    """Backward Euler + Newton for the first-order upwind FV scheme (see module doc).

    Parameters
    ----------
    pde : DistributionalDynamicsPDE
    dt : float
        Time step (the last step of each interval is shortened to land on it).
    newton_tol : float
        Convergence when the residual's :math:`L^1` norm :math:`\\sum|R_j||C|` is below this.
    max_newton : int
        Newton iterations before the step is retried with half the step.
    dt_min : float
        Smallest step tried before giving up.
    """

    name = "implicit-newton"

    def __init__(self, pde: DistributionalDynamicsPDE, dt: float = 1e-2, newton_tol: float = 1e-11,
                 max_newton: int = 30, dt_min: float = 1e-12, **kwargs) -> None:
        super().__init__(pde, **kwargs)
        if pde.order != 1:
            raise ValueError("implicit stepping uses the first-order upwind scheme: build "
                             "DistributionalDynamicsPDE with order=1")
        if not dt > 0:
            raise ValueError(f"implicit dt must be positive, got {dt}")
        self.dt = float(dt)
        self.newton_tol = float(newton_tol)
        self.max_newton = int(max_newton)
        self.max_log_step = 10.0
        self.dt_min = float(dt_min)
        self.operator = UpwindOperator(pde)
        self.info.update(dt=self.dt, dt_adaptive=False, newton_iterations=0, steps=0,
                         retries=0, backend="scipy.sparse (ddsolve.implicit)")

    def _newton(self, rho_old: np.ndarray, t_new: float, dt: float) -> np.ndarray | None:
        op = self.operator
        vol = op.vol
        positive = op.T > 0
        rho = np.maximum(rho_old, DENSITY_FLOOR) if positive else rho_old.copy()
        eye = sp.identity(op.M, format="csc")
        for _ in range(self.max_newton):
            res = rho - rho_old - dt * op.rate(rho, t_new)
            if not np.all(np.isfinite(res)):
                return None
            if np.sum(np.abs(res)) * vol < self.newton_tol:
                return rho
            J, nonlocal_mv = op.jacobian_parts(rho, t_new)
            A = (eye - dt * J).tocsc()
            self.info["newton_iterations"] += 1
            try:
                lu = spla.splu(A)
            except RuntimeError:
                return None
            if nonlocal_mv is None:
                delta = lu.solve(-res)
            else:
                full = spla.LinearOperator((op.M, op.M), dtype=float,
                                           matvec=lambda v: A @ v - dt * nonlocal_mv(v))
                prec = spla.LinearOperator((op.M, op.M), dtype=float, matvec=lu.solve)
                delta, info = spla.gmres(full, -res, M=prec, rtol=1e-13, atol=0.0,
                                         restart=50, maxiter=20)
                if info < 0:
                    return None
            if positive:
                # Additive Newton update where it keeps at least half of the cell's
                # density; elsewhere the update of s = log(rho) (same linear system,
                # rho -> rho * exp(delta / rho)), which stays positive.
                ratio = delta / rho
                rho = np.where(ratio >= -0.5, rho + delta,
                               rho * np.exp(np.clip(ratio, -self.max_log_step, 0.0)))
            else:
                rho = rho + delta
        res = rho - rho_old - dt * op.rate(rho, t_new)
        if np.sum(np.abs(res)) * vol < self.newton_tol:
            return rho
        return None

    def make_stepper(self, state, dt=None):
        if dt is not None:
            self.dt = float(dt)
            self.info["dt"] = self.dt

        def stepper(state, t_start: float, t_end: float) -> float:
            shape = state.data.shape
            rho = np.array(state.data, dtype=float).ravel()
            t = float(t_start)
            while t < t_end - 1e-14 * max(1.0, abs(t_end)):
                dt_try = min(self.dt, t_end - t)
                while True:
                    new = self._newton(rho, t + dt_try, dt_try)
                    if new is not None:
                        break
                    dt_try *= 0.5
                    self.info["retries"] += 1
                    if dt_try < self.dt_min:
                        state.data[...] = rho.reshape(shape)
                        raise SolverFailure(
                            f"Newton did not converge at t={t:.6g} even with dt={dt_try:.3g}",
                            t=t, cause="Newton failure")
                rho = new
                t = t + dt_try if dt_try < t_end - t else t_end
                self.info["steps"] += 1
                if not np.all(np.isfinite(rho)):
                    raise SolverFailure(f"non-finite density at t={t:.6g}", t=t,
                                        cause="non-finite density")
            state.data[...] = rho.reshape(shape)
            return t

        return stepper
