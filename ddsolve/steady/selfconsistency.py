r"""Stationary states of the noisy dynamics (:math:`\beta < \infty`) as solutions of the
self-consistency equation, solved by Newton's method.

A stationary state of :math:`\partial_t\rho = \xi\nabla\cdot(\rho\nabla(\Psi[\rho] +
\beta^{-1}\log(\rho/m)))` with positive density has a constant chemical potential, so

.. math:: \rho = \mathcal G(w) := M\,\frac{m\,e^{-\beta(V + w)}}{\int m\,e^{-\beta(V+w)}},
          \qquad w = \mathcal U\rho,

the critical points of the free energy at mass :math:`M` (Mei, Montanari & Nguyen, PNAS
115, 2018, Lemma 10.2 for the two-layer free energy; Carrillo, Gvalani, Pavliotis &
Schlichting, ARMA 235, 2020, Prop. 2.4 for McKean–Vlasov on the torus). On the grid the
same holds exactly for the discrete scheme: the discrete Gibbs state of :math:`\Psi_i`
is stationary for the finite-volume flux (:mod:`ddsolve.grid.grid_model`).

The unknown is the interaction potential, written :math:`w = Pz` with a representation
chosen from the interaction operator :math:`K` (:math:`w = K\rho|C|`):

* ``separable`` — :math:`K = F^\top G` of rank :math:`r`: :math:`z = G\rho|C|\in\mathbb R^r`,
  :math:`P = F^\top`;
* ``dense`` — :math:`z = w\in\mathbb R^M`, the matrix :math:`K`;
* ``matrix-free`` — :math:`z = w`, :math:`K` applied (FFT); Newton's linear systems by
  GMRES.

and the residual is :math:`R(z) = z - Q\,\mathcal G(Pz)|C|` (:math:`Q = G` or :math:`K`).
Positivity and mass hold for every iterate by construction. Its Jacobian is exact,

.. math:: J = I + \beta|C|\,Q\Big(D_\rho - \frac{|C|}{M}\rho\rho^\top\Big)P,

and on the subspace it acts on it is similar to :math:`\beta\,\tilde H`, the
mass-constrained Hessian of the free energy in the variables :math:`\delta\rho =
D_\rho^{1/2}y` (see :mod:`ddsolve.steady.stability`): a state is a non-degenerate
minimum iff every eigenvalue of :math:`J` is positive.

A problem with a continuous symmetry (translations of a torus when :math:`V` is
constant and :math:`U = W(x-y)` with :math:`W` even) has orbits of states and a singular
:math:`J`. The solver then works in the fixed-point space of the reflection
:math:`x \mapsto -x` (cells :math:`i \leftrightarrow M-1-i`), which fixes the phase of
every Fourier mode, meets every reflection-symmetric orbit and leaves the symmetric
pitchfork of the uniform state simple (Golubitsky, Stewart & Schaeffer, *Singularities
and Groups in Bifurcation Theory II*, 1988, §XVII).

Examples
--------
>>> from ddsolve.grid import cartesian, GridModel
>>> from ddsolve.model import Model, DoubleWellPotential, QuadraticKernel
>>> coords = cartesian([-3.0, 3.0], 150)
>>> gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=3.0), coords)
>>> state = newton(SelfConsistency(gm), SelfConsistency(gm).initial_guess(bias=0.5))
>>> state.residual < 1e-12, round(state.moments["mean_x"], 6)  # continuum m* = 0.6373244
(True, 0.637324)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ddsolve.failures import NumericalFailure
from ddsolve.grid.grid_model import GridModel
from ddsolve.grid.interaction import DenseInteraction, SeparableInteraction

__all__ = ["SelfConsistency", "SteadyState", "NewtonFailure", "newton", "gibbs_residual",
           "REPRESENTATIONS", "DENSE_MAX"]

REPRESENTATIONS = ("auto", "separable", "dense", "matrix-free")
DENSE_MAX = 2500
"""``auto`` uses a dense Jacobian up to this many cells, matrix-free GMRES above."""


class NewtonFailure(NumericalFailure):
    """Newton's method did not converge (the message says how far it got); ``t`` is the
    continuation parameter where it failed (NaN at fixed parameters)."""

    def __init__(self, message: str, t: float = math.nan) -> None:
        super().__init__(message, t, cause="newton")


def gibbs_residual(grid_model: GridModel, rho: np.ndarray, beta: float | None = None) -> float:
    r"""Self-consistency residual of any density:
    :math:`\|\rho - \mathcal G(\mathcal U\rho)\|_{L^1}/M`, zero exactly at the discrete
    stationary states with positive density."""
    beta = grid_model.model.beta if beta is None else beta
    mass = grid_model.mass(rho)
    a = grid_model.log_m - beta * grid_model.psi(rho)
    g = np.exp(a - a.max())
    g *= mass / grid_model.coords.integrate(g)
    return grid_model.coords.integrate(np.abs(rho - g)) / mass


@dataclass
class SteadyState:
    """A converged stationary state.

    Attributes
    ----------
    rho : ndarray, grid shape
        Cell averages (positive, mass ``mass``).
    z : ndarray, shape (n,)
        The unknown of the representation (``P z`` is the interaction potential).
    residual : float
        :func:`gibbs_residual` of ``rho``.
    iterations : int
        Newton iterations.
    free_energy, energy, mass : float
    moments : dict
        ``mean_<axis>``, ``m2_<axis>``.
    extra : dict
        Problem order parameters and ``risk`` where defined.
    """

    rho: np.ndarray
    z: np.ndarray
    residual: float
    iterations: int
    free_energy: float
    energy: float
    mass: float
    moments: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    parameter: float | None = None


class SelfConsistency:
    """The self-consistency map of a grid model, its residual and exact Jacobian.

    Parameters
    ----------
    grid_model : GridModel
        With finite ``beta``.
    mass : float
        Mass :math:`M` of the states.
    representation : str
        ``"auto" | "separable" | "dense" | "matrix-free"`` (module docstring).
    symmetry : str
        ``"auto"`` (reflection-even states when the problem is translation invariant on
        a torus) or ``"none"``.
    """

    def __init__(self, grid_model: GridModel, mass: float = 1.0, representation: str = "auto",
                 symmetry: str = "auto") -> None:
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
        if symmetry not in ("auto", "none"):
            raise ValueError(f"symmetry must be 'auto' or 'none', got {symmetry!r}")
        if not (math.isfinite(grid_model.model.beta) and grid_model.model.beta > 0):
            raise ValueError("the self-consistency equation needs a finite beta > 0 "
                             "(beta = inf: see ddsolve.steady.noiseless)")
        if not mass > 0:
            raise ValueError(f"mass must be positive, got {mass}")
        self.grid_model = grid_model
        self.coords = grid_model.coords
        self.mass = float(mass)
        self.beta = float(grid_model.model.beta)
        self.vol = self.coords.cell_volume
        op = grid_model.operator
        if representation == "auto":
            if op is None or isinstance(op, SeparableInteraction):
                representation = "separable"
            else:
                representation = "dense" if self.coords.size <= DENSE_MAX else "matrix-free"
        self.representation = representation
        M = self.coords.size
        if op is None:
            self._F = np.zeros((0, M))
            self._G = np.zeros((0, M))
        elif representation == "separable":
            if not isinstance(op, SeparableInteraction):
                raise ValueError("representation 'separable' needs a separable interaction "
                                 f"(this one is {op.method!r})")
            self._F, self._G = op.F, op.G
        elif representation == "dense":
            self._K = op.K if isinstance(op, DenseInteraction) else op.matrix()
        self.n = 0 if op is None else (self._F.shape[0] if representation == "separable" else M)
        self.basis = self._symmetry_basis() if symmetry == "auto" else None

    def with_beta(self, beta: float) -> SelfConsistency:
        """The same problem at inverse temperature ``beta`` (shares the grid model)."""
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be finite and positive, got {beta}")
        other = copy.copy(self)
        other.beta = float(beta)
        return other

    # ----------------------------------------------------------------- the map
    def potential(self, z: np.ndarray) -> np.ndarray:
        """:math:`w = Pz`, flat cell values."""
        if self.representation == "separable":
            return z @ self._F if self.n else np.zeros(self.coords.size)
        return z

    def _apply_Q(self, v: np.ndarray) -> np.ndarray:
        """:math:`Qv|C|` for flat cell values ``v``."""
        if self.representation == "separable":
            return self._G @ v * self.vol
        if self.representation == "dense":
            return self._K @ v * self.vol
        return self.grid_model.operator.apply(v.reshape(self.coords.shape)).ravel()

    def density(self, z: np.ndarray, beta: float | None = None) -> np.ndarray:
        """:math:`\\mathcal G(Pz)`, flat."""
        beta = self.beta if beta is None else beta
        a = self.grid_model.log_m.ravel() - beta * (self.grid_model.V.ravel() + self.potential(z))
        g = np.exp(a - a.max())
        return g * (self.mass / (g.sum() * self.vol))

    def encode(self, rho: np.ndarray) -> np.ndarray:
        """The unknown ``z`` of a density (``Q rho |C|``)."""
        return self._apply_Q(np.asarray(rho, float).ravel()) if self.n else np.zeros(0)

    def residual(self, z: np.ndarray, beta: float | None = None) -> np.ndarray:
        return z - self._apply_Q(self.density(z, beta)) if self.n else np.zeros(0)

    def jvp(self, z: np.ndarray, v: np.ndarray, beta: float | None = None,
            rho: np.ndarray | None = None) -> np.ndarray:
        """:math:`Jv`."""
        beta = self.beta if beta is None else beta
        rho = self.density(z, beta) if rho is None else rho
        pv = self.potential(v)
        drho = rho * pv - rho * (np.dot(rho, pv) * self.vol / self.mass)
        return v + beta * self._apply_Q(drho)

    def jacobian(self, z: np.ndarray, beta: float | None = None):
        """:math:`J` as an array (separable, dense) or a ``LinearOperator`` (matrix-free)."""
        beta = self.beta if beta is None else beta
        rho = self.density(z, beta)
        n = self.n
        if self.representation == "matrix-free":
            return spla.LinearOperator((n, n), matvec=lambda v: self.jvp(z, v, beta, rho), dtype=float)
        if self.representation == "separable":
            F, G = self._F, self._G
            Grho = G @ rho
            A = (G * rho) @ F.T - np.outer(Grho, F @ rho) * (self.vol / self.mass)
            return np.eye(n) + beta * self.vol * A
        K = self._K
        Krho = K @ rho
        A = K * rho[None, :] - np.outer(Krho, rho) * (self.vol / self.mass)
        return np.eye(n) + beta * self.vol * A

    def d_beta(self, z: np.ndarray, beta: float | None = None) -> np.ndarray:
        r""":math:`\partial R/\partial\beta` (the continuation parameter ``model.beta``)."""
        beta = self.beta if beta is None else beta
        rho = self.density(z, beta)
        psi = self.grid_model.V.ravel() + self.potential(z)
        dlog = -(psi - np.dot(rho, psi) * self.vol / self.mass)
        return -self._apply_Q(rho * dlog)

    # ----------------------------------------------------------------- symmetry
    def _symmetry_basis(self) -> np.ndarray | None:
        """Orthonormal basis of the reflection-even unknowns (``z = B y``), or None."""
        gm, coords = self.grid_model, self.coords
        op = gm.operator
        if op is None or coords.ndim != 1 or not coords.periodic[0]:
            return None
        if not getattr(op.kernel, "translation_invariant", False):
            return None
        V = gm.V.ravel()
        if np.ptp(V) > 1e-12 * (1.0 + np.abs(V).max()):
            return None
        M = coords.size
        mirror = np.arange(M)[::-1]
        if self.representation == "separable":
            F = self._F  # rows: features; mirror acts on them through the least-squares action
            S = np.linalg.lstsq(F.T, F[:, mirror].T, rcond=None)[0].T
            lam, vec = np.linalg.eigh(0.5 * (S + S.T))
            B = vec[:, lam > 0.5]
        else:
            half = M // 2
            B = np.zeros((M, half + M % 2))
            for j in range(half):
                B[j, j] = B[M - 1 - j, j] = 1 / math.sqrt(2)
            if M % 2:
                B[half, half] = 1.0
        return B if B.shape[1] < self.n else None

    def reduce(self, z: np.ndarray) -> np.ndarray:
        return z if self.basis is None else self.basis.T @ z

    def expand(self, y: np.ndarray) -> np.ndarray:
        return y if self.basis is None else self.basis @ y

    def translation_images(self, z: np.ndarray) -> list[np.ndarray]:
        """Other points of the same orbit that are also reflection-even (the half-period
        shift), used to identify states modulo the symmetry."""
        if self.basis is None or self.coords.size % 2:
            return []
        w = self.potential(z)
        shifted = np.roll(w, self.coords.size // 2)
        if self.representation == "separable":
            return [np.linalg.lstsq(self._F.T, shifted, rcond=None)[0]]
        return [shifted]

    def reduced_residual(self, y: np.ndarray, beta: float | None = None) -> np.ndarray:
        return self.reduce(self.residual(self.expand(y), beta))

    def reduced_jacobian(self, y: np.ndarray, beta: float | None = None):
        z = self.expand(y)
        J = self.jacobian(z, beta)
        if self.basis is None:
            return J
        B = self.basis
        if isinstance(J, np.ndarray):
            return B.T @ J @ B
        return spla.LinearOperator((B.shape[1],) * 2, matvec=lambda v: B.T @ (J @ (B @ v)), dtype=float)

    # ----------------------------------------------------------------- guesses
    def initial_guess(self, bias: float = 0.0, rho: np.ndarray | None = None) -> np.ndarray:
        """``z`` of a density: ``rho`` if given, else the Gibbs state of ``V`` alone
        tilted by ``exp(bias * x_0)`` (a mean-field bias along the first axis)."""
        if rho is None:
            x = self.coords.cell_centers()[..., 0].ravel()
            a = self.grid_model.log_m.ravel() - self.beta * self.grid_model.V.ravel() + bias * x
            rho = np.exp(a - a.max())
            rho *= self.mass / (rho.sum() * self.vol)
        return self.encode(rho)

    def norm(self, z: np.ndarray) -> float:
        """:math:`L^2` norm of the potential :math:`Pz` (the distance of deflation)."""
        return math.sqrt(float(np.sum(self.potential(z) ** 2)) * self.vol)

    # ----------------------------------------------------------------- states
    def state(self, z: np.ndarray, iterations: int = 0, parameter: float | None = None,
              extra: dict[str, float] | None = None) -> SteadyState:
        gm = self.grid_model
        rho = self.density(z).reshape(self.coords.shape)
        T = 1.0 / self.beta
        energy = gm.energy(rho)
        out_extra = dict(extra or {})
        if gm.model.has_risk:
            out_extra["risk"] = gm.model.risk_offset + 2.0 * energy
        return SteadyState(rho=rho, z=np.array(z, float), residual=gibbs_residual(gm, rho, self.beta),
                           iterations=iterations, energy=energy,
                           free_energy=energy + T * gm.relative_entropy(rho), mass=gm.mass(rho),
                           moments=gm.moments(rho), extra=out_extra, parameter=parameter)


def solve_linear(J, b: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Solve :math:`Jx = b`: LU for arrays, GMRES (identity is the local part of
    :math:`J`, so unpreconditioned GMRES converges in a few tens of steps) otherwise."""
    if isinstance(J, np.ndarray):
        return scipy.linalg.solve(J, b)
    x, info = spla.gmres(J, b, rtol=tol, atol=0.0, restart=60, maxiter=20)
    if info != 0:
        raise np.linalg.LinAlgError(f"GMRES did not converge (info={info})")
    return x


def newton(problem: SelfConsistency, z0: np.ndarray, *, tol: float = 1e-12, max_iter: int = 50,
           deflate: Any = None, max_residual_growth: float = 1e8, beta: float | None = None,
           parameter: float | None = None) -> SteadyState:
    r"""Newton's method with backtracking line search on the self-consistency residual.

    Parameters
    ----------
    problem : SelfConsistency
    z0 : ndarray, shape (problem.n,)
        Initial guess.
    tol : float
        Stop when the max-norm of the residual (in potential units) is below
        ``tol * (1 + |z|_inf)``.
    max_iter : int
        Iteration cap.
    deflate : Deflation, optional
        Deflation operator (:mod:`ddsolve.steady.deflation`): the step is the Newton step
        of :math:`\mathcal M(z)R(z)`, a rescaled Newton step of :math:`R`.
    max_residual_growth : float
        Reject the guess when no step length keeps the residual below this multiple of
        its initial value.

    Returns
    -------
    SteadyState

    Raises
    ------
    NewtonFailure
        Not converged within ``max_iter`` iterations, singular Jacobian, or a rejected step.
    """
    y = problem.reduce(np.asarray(z0, float))
    if problem.n == 0:
        return problem.state(np.zeros(0), 0, parameter)
    def merit(y, r):  # the squared (deflated) residual
        f = float(r @ r)
        return f if deflate is None else f * deflate.factor(problem, problem.expand(y)) ** 2

    r = problem.reduced_residual(y, beta)
    r_first = float(np.linalg.norm(r, np.inf))
    for it in range(1, max_iter + 1):
        scale = 1.0 + np.linalg.norm(y, np.inf)
        if np.linalg.norm(r, np.inf) <= tol * scale:
            return problem.state(problem.expand(y), it - 1, parameter)
        try:
            step = -solve_linear(problem.reduced_jacobian(y, beta), r)
        except (np.linalg.LinAlgError, ValueError) as err:
            raise NewtonFailure(f"singular Newton system at iteration {it}: {err}") from None
        if deflate is not None:
            step = deflate.scale_step(problem, y, step)
        lam, f0 = 1.0, merit(y, r)
        while True:
            y_new = y + lam * step
            r_new = problem.reduced_residual(y_new, beta)
            f_new = merit(y_new, r_new)
            if np.isfinite(f_new) and f_new <= (1 - 1e-4 * lam) * f0:
                break
            lam *= 0.5
            if lam < 1e-3:  # a Newton direction this poor: give the guess up
                raise NewtonFailure(f"line search failed at iteration {it} "
                                    f"(residual {np.linalg.norm(r, np.inf):.3g})")
        if np.linalg.norm(lam * step, np.inf) <= 1e-15 * scale and np.linalg.norm(r_new, np.inf) <= 1e3 * tol * scale:
            return problem.state(problem.expand(y_new), it, parameter)
        if np.linalg.norm(r_new, np.inf) > max_residual_growth * max(r_first, tol):
            raise NewtonFailure(f"rejected at iteration {it}: the residual grew to "
                                f"{np.linalg.norm(r_new, np.inf):.3g} (from {r_first:.3g})")
        y, r = y_new, r_new
    if np.linalg.norm(r, np.inf) <= tol * (1.0 + np.linalg.norm(y, np.inf)):
        return problem.state(problem.expand(y), max_iter, parameter)
    raise NewtonFailure(f"Newton did not converge in {max_iter} iterations "
                        f"(residual {np.linalg.norm(r, np.inf):.3g})")
