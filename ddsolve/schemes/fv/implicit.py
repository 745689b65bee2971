r"""Implicit stepping of the finite-volume scheme with Newton's method.

For diffusion-dominated problems the explicit step is bound by
:math:`\Delta t \lesssim h^2\beta/2`. This solver takes steps set by accuracy:
backward Euler (first order) or variable-step BDF2 (second order),

.. math:: a_0\rho^{n+1} + a_1\rho^{n} + a_2\rho^{n-1} = \Delta t\,L_h(\rho^{n+1}, t_{n+1}),

(:math:`a = (1, -1, 0)` for backward Euler; :math:`a_0 = \frac{1+2\omega}{1+\omega},
a_1 = -(1+\omega), a_2 = \frac{\omega^2}{1+\omega}` with
:math:`\omega = \Delta t_n/\Delta t_{n-1}` for BDF2). Both conserve mass exactly, since
:math:`\sum_j L_h(\rho)_j = 0` and :math:`a_0+a_1+a_2 = 0`.

:math:`L_h(\rho) = \sum_a G_a^\top F_a` is written with sparse matrices: per axis, the face
difference :math:`(G\phi)_f = (\phi_{R(f)}-\phi_{L(f)})/h` and the face fluxes :math:`F`.
Two face fluxes are available:

* ``"upwind"`` — first-order upwind flux of Carrillo, Chertock & Huang (CiCP 17, 2015,
  with zero slopes): :math:`F = u^+\rho_L + u^-\rho_R`,
  :math:`u = -\xi\,G(\Psi + \beta^{-1}\log(\rho/m))`. Works for any :math:`\beta`.
* ``"logmean"`` — second-order flux for :math:`\beta<\infty`:
  :math:`F = -\xi\,\Lambda(\rho_L,\rho_R)\,G\big(\Psi + \beta^{-1}\log(\rho/m)\big)` with the
  logarithmic mean :math:`\Lambda(a,b) = (b-a)/(\log b - \log a)`. Because
  :math:`\Lambda\,G\log\rho = G\rho` it equals
  :math:`-\xi\big(\Lambda\,G(\Psi - \beta^{-1}\log m) + \beta^{-1}G\rho\big)`, a smooth
  function of :math:`\rho` (no logarithm of the unknown), and the semi-discrete free
  energy decays as :math:`\dot F_h = -\sum_f \Lambda_f (G\phi)_f^2\,h\,|C| \le 0`; the
  discrete Gibbs state is exactly stationary. This is the log-mean (entropy) flux of
  finite-volume schemes for Fokker–Planck equations (e.g. Chainais-Hillairet & Herda,
  IMA J. Numer. Anal. 2020; the "square-root approximation" family).

The Jacobian is exact. Its local part (everything but the interaction kernel :math:`K`)
is sparse and factorised with SuperLU; the nonlocal part is applied matrix-free through
the interaction operator, and the Newton system is solved by GMRES preconditioned with the
local factorisation (exact Newton: quadratic convergence is kept). Without interaction
the sparse system is solved directly. With diffusion the Newton update is additive where
it keeps at least half of a cell's density and, where it would remove more, is taken in
the entropy variable :math:`s=\log\rho` (same linear system, update
:math:`\rho\leftarrow\rho\,e^{\delta/\rho}`), so iterates stay positive without the
stalling of a damped additive step in exponentially small tails. A step that does not
converge is retried with half the time step.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from pde.solvers.base import SolverBase

from ddsolve.grid.faces import Faces
from ddsolve.grid.grid_model import DENSITY_FLOOR
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SolverFailure
from ddsolve.schemes.stepping import march

__all__ = ["FLUXES", "ImplicitFVOperator", "UpwindOperator", "ImplicitEulerSolver", "log_mean"]

FLUXES = ("upwind", "logmean")


def log_mean(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Logarithmic mean :math:`\Lambda(a,b)=(b-a)/(\log b-\log a)` and its partial
    derivatives, for :math:`a, b > 0` (series near :math:`a=b`)."""
    a = np.maximum(a, DENSITY_FLOOR)
    b = np.maximum(b, DENSITY_FLOOR)
    D = np.log(b) - np.log(a)
    near = np.abs(D) < 1e-3
    Ds = np.where(near, 1.0, D)
    lam = np.where(near, 0.0, (b - a) / Ds)
    da = np.where(near, 0.0, (lam / a - 1.0) / Ds)
    db = np.where(near, 0.0, (1.0 - lam / b) / Ds)
    # near a = b: Lambda = s/2 - d^2/(6 s) + O(d^4/s^3), s = a + b, d = b - a
    s, d = a + b, b - a
    lam = np.where(near, 0.5 * s - d * d / (6 * s), lam)
    da = np.where(near, 0.5 + d / (3 * s) + d * d / (6 * s * s), da)
    db = np.where(near, 0.5 - d / (3 * s) + d * d / (6 * s * s), db)
    return lam, da, db


class ImplicitFVOperator:
    """The finite-volume operator :math:`L_h` on flattened cell values and its exact
    Jacobian, with the ``"upwind"`` or ``"logmean"`` face flux (module doc).

    Faces are stored as index arrays (left cell, right cell, spacing), one entry per
    interior face of every axis (and the wrap-around faces of periodic axes), so the
    operator and the Jacobian are assembled with vectorised gathers and one sparse
    conversion per Newton iteration.

    Parameters
    ----------
    eq : DistributionalDynamicsPDE
        Supplies the grid model (cell potentials, interaction, temperature, schedule).
    flux : str
        ``"upwind"`` or ``"logmean"`` (the latter needs a finite ``beta``).
    """

    def __init__(self, eq: DistributionalDynamicsPDE, flux: str = "upwind") -> None:
        if flux not in FLUXES:
            raise ValueError(f"implicit flux must be one of {FLUXES}, got {flux!r}")
        gm = eq.grid_model
        if flux == "logmean" and gm.temperature == 0:
            raise ValueError("the 'logmean' flux needs diffusion (finite beta); use 'upwind'")
        self.eq, self.gm, self.flux = eq, gm, flux
        coords = gm.coords
        M = coords.size
        self.M = M
        self.faces = Faces(coords)
        self.L, self.R, self.inv_h = self.faces.left, self.faces.right, self.faces.inv_h
        # sparsity pattern of the Jacobian (with the diagonal for the identity)
        cells = np.arange(M)
        self._rows = np.concatenate([self.L, self.L, self.R, self.R, cells])
        self._cols = np.concatenate([self.L, self.R, self.L, self.R, cells])
        self.log_m = gm.log_m.ravel()
        self.T = gm.temperature
        self.vol = coords.cell_volume

    def _grad(self, phi: np.ndarray) -> np.ndarray:
        r"""Face differences :math:`(\phi_R - \phi_L)/h`."""
        return self.faces.difference(phi)

    def _div(self, F: np.ndarray) -> np.ndarray:
        r""":math:`G^\top F` (minus the divergence)."""
        return self.faces.adjoint(F)

    def _phi(self, rho: np.ndarray) -> np.ndarray:
        r""":math:`\Psi + \beta^{-1}\log(\rho/m)` (upwind) or
        :math:`\Psi - \beta^{-1}\log m` (log-mean), without :math:`\xi`."""
        phi = self.gm.psi(rho.reshape(self.gm.coords.shape)).ravel()
        if self.T > 0:
            if self.flux == "upwind":
                phi = phi + self.T * (np.log(np.maximum(rho, DENSITY_FLOOR)) - self.log_m)
            else:
                phi = phi - self.T * self.log_m
        return phi

    def _fluxes(self, rho: np.ndarray, xi: float):
        """Face fluxes ``F`` and their derivatives: w.r.t. the left and right densities
        at fixed potential (``dL, dR``) and w.r.t. the potential difference ``dg``."""
        g = self._grad(self._phi(rho))
        rL, rR = rho[self.L], rho[self.R]
        if self.flux == "upwind":
            u = -xi * g
            F = np.maximum(u, 0.0) * rL + np.minimum(u, 0.0) * rR
            return F, np.maximum(u, 0.0), np.minimum(u, 0.0), -xi * np.where(u > 0, rL, rR)
        lam, la, lb = log_mean(rL, rR)
        F = -xi * (lam * g + self.T * (rR - rL) * self.inv_h)
        return F, -xi * la * g, -xi * lb * g, -xi * lam

    def rate(self, rho: np.ndarray, t: float) -> np.ndarray:
        r""":math:`L_h(\rho)` on flattened cell values."""
        return self._div(self._fluxes(rho, self.gm.model.xi(t))[0])

    def jacobian_parts(self, rho: np.ndarray, t: float, shift: float = 0.0, scale: float = 1.0):
        """``shift*I + scale*J_local`` as a CSC matrix, and a function applying the
        nonlocal part of ``J`` (``None`` without interaction)."""
        xi = self.gm.model.xi(t)
        F, dL, dR, dg = self._fluxes(rho, xi)
        # dF/drho_L and dF/drho_R including the local part of the potential difference
        if self.T > 0 and self.flux == "upwind":
            inv_rho = 1.0 / np.maximum(rho, DENSITY_FLOOR)
            a = dL - dg * self.inv_h * self.T * inv_rho[self.L]
            b = dR + dg * self.inv_h * self.T * inv_rho[self.R]
        elif self.T > 0:
            a = dL + xi * self.T * self.inv_h
            b = dR - xi * self.T * self.inv_h
        else:
            a, b = dL, dR
        wa, wb = scale * a * self.inv_h, scale * b * self.inv_h
        data = np.concatenate([-wa, -wb, wa, wb, np.full(self.M, shift)])
        J = sp.csc_matrix((data, (self._rows, self._cols)), shape=(self.M, self.M))
        op = self.gm.operator
        if op is None:
            return J, None
        shape = self.gm.coords.shape

        def nonlocal_matvec(v: np.ndarray) -> np.ndarray:
            return self._div(dg * self._grad(op.apply(v.reshape(shape)).ravel()))

        return J, nonlocal_matvec


class UpwindOperator(ImplicitFVOperator):
    """:class:`ImplicitFVOperator` with the first-order upwind flux."""

    def __init__(self, eq: DistributionalDynamicsPDE) -> None:
        super().__init__(eq, "upwind")


class ImplicitEulerSolver(SolverBase):
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
        ``"upwind"`` (first order, any beta) or ``"logmean"`` (second order, finite beta).
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
        self.max_log_step = 10.0
        self.dt_min = float(dt_min)
        self.operator = ImplicitFVOperator(pde, flux)
        self._history: tuple[float, np.ndarray, float] | None = None  # (t, rho, dt) of last step
        self.info.update(dt=self.dt, dt_adaptive=False, newton_iterations=0, steps=0,
                         retries=0, time_order=self.time_order, flux=flux,
                         backend="scipy.sparse (ddsolve.schemes.fv.implicit)")

    def _newton(self, a0: float, rhs: np.ndarray, guess: np.ndarray, t_new: float,
                dt: float) -> np.ndarray | None:
        """Solve ``a0 rho - dt L(rho, t_new) = rhs``; ``None`` if Newton fails."""
        op = self.operator
        vol = op.vol
        positive = op.T > 0
        rho = np.maximum(guess, DENSITY_FLOOR) if positive else guess.copy()

        def residual(r):
            return a0 * r - rhs - dt * op.rate(r, t_new)

        for _ in range(self.max_newton):
            res = residual(rho)
            if not np.all(np.isfinite(res)):
                return None
            if np.sum(np.abs(res)) * vol < self.newton_tol:
                return rho
            A, nonlocal_mv = op.jacobian_parts(rho, t_new, shift=a0, scale=-dt)
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
                # additive Newton update where it keeps at least half of the cell's
                # density; elsewhere the update of s = log(rho), which stays positive
                ratio = delta / rho
                rho = np.where(ratio >= -0.5, rho + delta,
                               rho * np.exp(np.clip(ratio, -self.max_log_step, 0.0)))
            else:
                rho = rho + delta
        if np.sum(np.abs(residual(rho))) * vol < self.newton_tol:
            return rho
        return None

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

            march(float(t_start), float(t_end), self.dt, attempt, dt_min=self.dt_min, fail=fail)
            state.data[...] = now["rho"].reshape(shape)
            return float(t_end)

        return stepper
