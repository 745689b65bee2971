r"""The JKO step in Lagrangian (quantile) coordinates, exact in Wasserstein distance, for
laws on an interval and for rotation-invariant laws on :math:`\mathbb{R}^d`.

On the line, :math:`W_2(\mu,\nu) = \|X_\mu - X_\nu\|_{L^2(0,1)}` for the quantile
functions :math:`X`, so the Wasserstein space is isometric to the convex cone of
non-decreasing maps in :math:`L^2(0,1)` (e.g. Villani, *Topics in Optimal
Transportation*, 2003, Thm 2.18). For a rotation-invariant law on :math:`\mathbb{R}^d` the
optimal map between two such laws is radial, so :math:`W_2` in :math:`\mathbb{R}^d` is the
1D distance between the laws of :math:`r = |\theta|`, and the JKO step on radial laws is
the 1D step with the reference measure :math:`r^{d-1}` in the entropy. In quantile form
the free energy reads

.. math::

    F[X] = \int_0^1 V(X(s))\,ds + \tfrac12\iint U(X(s),X(s'))\,ds\,ds'
           + \beta^{-1}\int_0^1\big(-\log\partial_sX(s) - (d-1)\log X(s)\big)\,ds,

and the minimising movement (Jordan, Kinderlehrer & Otto, SIAM J. Math. Anal. 29, 1998)
:math:`X^{n+1} = \arg\min_X F[X] + \|X - X^n\|^2/(2\tau)` is backward Euler for the
flow :math:`\partial_tX = -\nabla F[X]` in this flat space.

**Discretisation** (a Lagrangian particle scheme in the spirit of Gosse & Toscani,
SIAM J. Sci. Comput. 28, 2006, and Carrillo & Moll, SIAM J. Sci. Comput. 31, 2009).
The law is :math:`N` atoms :math:`y_0\le\dots\le y_{N-1}` with masses :math:`m_i` at the
mass levels :math:`s_i = \sum_{j<i}m_j + m_i/2`. The squared distance
:math:`\sum_i m_i(y_i-y_i^n)^2` is the exact :math:`W_2^2` between the atomic laws;
:math:`V`, :math:`U` and :math:`\log r` are evaluated at the atoms (the midpoint rule in
:math:`s`); with diffusion the density is piecewise constant between neighbouring atoms
(mass :math:`(m_i+m_{i+1})/2` on :math:`[y_i, y_{i+1}]`) and on the two end intervals
between the walls of the grid and the first and last atoms (masses :math:`m_0/2`,
:math:`m_{N-1}/2`), whose entropy :math:`\sum_g\mu_g\log(\mu_g/\Delta_g)` is a barrier
that keeps the atoms ordered and inside the domain: positivity and the no-flux walls
hold by construction, with no numerical diffusion. Without diffusion
(:math:`\beta=\infty`) atoms may reach a wall, handled as a bound constraint (projected
Newton, Bertsekas, SIAM J. Control Optim. 20, 1982). The discrete step is the exact
minimiser of the discrete functional, so for every :math:`\tau`

.. math:: F_h(y^{n+1}) + \tfrac{1}{2\tau}\textstyle\sum_i m_i(y_i^{n+1}-y_i^n)^2 \le F_h(y^n)

(Newton starts at :math:`y^n` and every accepted iterate decreases the objective).

**Second order** (``time_order=2``): the variational BDF2 of Matthes & Plazotta (ESAIM:
M2AN 53, 2019), :math:`y^{n+1} = \arg\min F + \frac{1+\omega}{2\tau}\|y-y^n\|^2 -
\frac{\omega^2}{2(1+\omega)\tau}\|y-y^{n-1}\|^2` with :math:`\omega=\tau_n/\tau_{n-1}`,
which in this flat space is exactly variable-step BDF2.

**Newton**: the Hessian of the entropy and distance terms is tridiagonal and exact; the
interaction adds a rank-:math:`K` term (separable kernels; solved by
Sherman–Morrison–Woodbury in :math:`O(NK^2)`) or a dense matrix
(:mod:`ddsolve.schemes.jko.atoms`). A shifted Hessian and an Armijo backtracking line
search globalise it for non-convex energies.

The grid density (``density.h5``) is the conservative reconstruction: the cell masses are
differences of the piecewise-linear distribution function through the mass levels, so
mass is exact to round-off.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from ddsolve.grid.grid_model import GridModel
from ddsolve.schemes.jko.atoms import AtomEnergy, HessianParts

__all__ = ["LagrangianJKO", "MASS_GRIDS"]

MASS_GRIDS = ("graded", "uniform")
"""Atom masses: ``graded`` cuts the unit mass at :math:`u - \\sin(2\\pi u)/(2\\pi)` for
uniform :math:`u` (end masses :math:`O(N^{-3})`, so the tails of the law are resolved);
``uniform`` gives every atom :math:`1/N`."""

_ARMIJO = 1e-4


def _monotone_interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic (PCHIP, Fritsch & Carlson, SIAM J. Numer. Anal. 17, 1980)
    interpolation of non-decreasing data, through the strictly increasing subset of ``xp``;
    linear where ``xp`` has ties (atoms held together at a wall). Second order for the
    distribution function, where the linear interpolant gives a piecewise-constant
    density, first order in the atom spacing."""
    from scipy.interpolate import PchipInterpolator

    dx = np.diff(xp)
    if np.any(dx <= 0) and np.any(np.diff(fp)[dx <= 0] > 0):
        return np.interp(x, xp, fp)  # a jump in the distribution function: a point mass
    keep = np.concatenate([[True], dx > 0])
    return PchipInterpolator(xp[keep], fp[keep], extrapolate=True)(np.clip(x, xp[0], xp[-1]))


class LagrangianJKO:
    """Exact-distance JKO steps for laws on a 1D or radial grid, in quantile coordinates.

    Parameters
    ----------
    grid_model : GridModel
        A one-axis, non-periodic grid (Cartesian interval or radius of
        :math:`\\mathbb{R}^d`); the walls of the axis bound the atoms.
    atoms : int, optional
        Number of atoms :math:`N` (default: the number of grid cells).
    inner_tol : float
        Newton stops when :math:`\\tau\\max_i|\\partial_i\\Phi|/m_i \\le` ``inner_tol``
        times the length of the axis (a displacement criterion).
    max_inner : int
        Newton iterations before the step is reported as failed.
    masses : str
        ``"graded"`` (default) or ``"uniform"`` atom masses (:data:`MASS_GRIDS`).

    Notes
    -----
    The state is the array of atom positions, shape ``(N,)``; the masses are
    ``self.masses`` (fractions of the initial mass) and ``self.levels`` their mass levels.

    References
    ----------
    R. Jordan, D. Kinderlehrer, F. Otto, SIAM J. Math. Anal. 29 (1998) 1–17.
    L. Gosse, G. Toscani, SIAM J. Sci. Comput. 28 (2006) 1203–1227.
    D. Matthes, S. Plazotta, ESAIM: M2AN 53 (2019) 1853–1879.

    Examples
    --------
    >>> method = LagrangianJKO(gm)                       # doctest: +SKIP
    >>> y = method.initial_state(rho0)                   # doctest: +SKIP
    >>> y1, info = method.step(y, tau=0.1)               # doctest: +SKIP
    >>> rho1 = method.density(y1)                        # doctest: +SKIP
    """

    name = "lagrangian"
    supports_bdf2 = True

    def __init__(self, grid_model: GridModel, atoms: int | None = None, inner_tol: float = 1e-11,
                 max_inner: int = 50, masses: str = "graded") -> None:
        coords = grid_model.coords
        if coords.ndim != 1 or coords.periodic[0]:
            raise ValueError("the Lagrangian JKO step needs a 1D, non-periodic grid (use method = 'fv')")
        self.gm = grid_model
        axis = coords.axes[0]
        self.lower, self.upper = float(axis.lower), float(axis.upper)
        self.length = self.upper - self.lower
        self.edges = axis.edges
        self.h = axis.spacing
        self.n_atoms = int(atoms) if atoms is not None else axis.cells
        if self.n_atoms < 2:
            raise ValueError(f"atoms must be at least 2, got {self.n_atoms}")
        self.T = float(grid_model.temperature)
        d = axis.radial_dim
        self.ref = 0.0 if d is None else float(d - 1)  # (d - 1) log r of the reference measure
        self.energy = AtomEnergy(grid_model.model, coords)
        self.inner_tol = float(inner_tol)
        self.max_inner = int(max_inner)
        if masses not in MASS_GRIDS:
            raise ValueError(f"atom masses must be one of {MASS_GRIDS}, got {masses!r}")
        u = np.linspace(0.0, 1.0, self.n_atoms + 1)
        cuts = u - np.sin(2 * np.pi * u) / (2 * np.pi) if masses == "graded" else u
        cuts[0], cuts[-1] = 0.0, 1.0
        self.fractions = np.diff(cuts)
        self.masses = self.fractions.copy()

    # representation -------------------------------------------------------------------
    def initial_state(self, rho0: np.ndarray) -> np.ndarray:
        """Atoms at the mass levels of the grid density ``rho0`` (quantiles of its
        distribution function through the cell edges, monotone cubic); the masses take the
        total mass of ``rho0``."""
        cell = np.asarray(rho0, dtype=float).ravel() * self.h
        cdf = np.concatenate([[0.0], np.cumsum(cell)])
        total = cdf[-1]
        self.masses = self.fractions * total
        return _monotone_interp(self.levels, cdf, self.edges)

    @property
    def levels(self) -> np.ndarray:
        """Mass levels of the atoms, :math:`s_i = \\sum_{j<i}m_j + m_i/2`, shape (N,)."""
        return np.cumsum(self.masses) - 0.5 * self.masses

    def _gap_masses(self) -> np.ndarray:
        m = self.masses
        return np.concatenate([[0.5 * m[0]], 0.5 * (m[1:] + m[:-1]), [0.5 * m[-1]]])

    def _gaps(self, y: np.ndarray) -> np.ndarray:
        return np.diff(np.concatenate([[self.lower], y, [self.upper]]))

    def distribution_nodes(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``(x, F)`` of the piecewise-linear distribution function of the law
        (through the atoms at their mass levels, and the walls or, without diffusion,
        half a neighbouring gap beyond the end atoms)."""
        m = self.masses
        F_atoms = self.levels
        total = float(np.sum(m))
        if self.T > 0:
            x_lo, x_hi = self.lower, self.upper
        else:
            x_lo = max(self.lower, y[0] - (y[1] - y[0]) * m[0] / (m[0] + m[1]))
            x_hi = min(self.upper, y[-1] + (y[-1] - y[-2]) * m[-1] / (m[-1] + m[-2]))
        return np.concatenate([[x_lo], y, [x_hi]]), np.concatenate([[0.0], F_atoms, [total]])

    def density(self, y: np.ndarray) -> np.ndarray:
        """Cell averages on the grid: cell masses of the reconstructed law over h (the
        distribution function through the nodes of :meth:`distribution_nodes`, monotone
        cubic, so the density is non-negative and the mass exact)."""
        x, F = self.distribution_nodes(y)
        Fe = _monotone_interp(self.edges, x, F)
        Fe[0], Fe[-1] = 0.0, F[-1]
        return np.maximum(np.diff(Fe), 0.0) / self.h

    # functional -----------------------------------------------------------------------
    def _entropy(self, y: np.ndarray, derivatives: bool):
        """:math:`\\beta^{-1}` times the entropy of the gap densities minus the reference
        measure term; with the gradient and the tridiagonal Hessian (diag, off)."""
        T, m = self.T, self.masses
        if T == 0:
            z = np.zeros(y.size)
            return 0.0, z, z, z[:-1]
        mu, gaps = self._gap_masses(), self._gaps(y)
        if np.any(gaps <= 0) or (self.ref and np.any(y <= 0)):
            return math.inf, None, None, None
        value = T * float(np.sum(mu * (np.log(mu) - np.log(gaps))))
        if self.ref:
            value -= T * self.ref * float(m @ np.log(y))
        if not derivatives:
            return value, None, None, None
        w = mu / gaps  # d/d(gap) of -mu log(gap) is -w
        grad = T * (w[1:] - w[:-1])
        c = T * mu / gaps**2
        diag = c[:-1] + c[1:]
        off = -c[1:-1]
        if self.ref:
            grad = grad - T * self.ref * m / y
            diag = diag + T * self.ref * m / y**2
        return value, grad, diag, off

    def free_energy(self, y: np.ndarray) -> float:
        """The discrete free energy :math:`F_h(y)` that the step minimises."""
        H, *_ = self._entropy(y, False)
        return self.energy.value(y, self.masses) + H

    def distance2(self, a: np.ndarray, b: np.ndarray) -> float:
        """:math:`W_2^2` between the atomic laws: :math:`\\sum_i m_i(a_i-b_i)^2`."""
        return float(self.masses @ (a - b) ** 2)

    # the step -------------------------------------------------------------------------
    def step(self, y: np.ndarray, tau: float, previous: tuple[np.ndarray, float] | None = None
             ) -> tuple[np.ndarray | None, dict]:
        """One JKO step (``previous = (y_prev, tau_prev)``: the variational BDF2 step).

        Returns ``(y_new, info)``, or ``(None, info)`` when Newton fails; ``info`` has
        ``iterations``, ``residual``, ``distance2``, ``free_energy`` (of ``y_new``),
        ``converged`` and ``reason``.
        """
        m = self.masses
        if previous is None:
            a, b, y_prev = 1.0, 0.0, y
        else:
            y_prev, tau_prev = previous
            omega = tau / tau_prev
            a, b = 1.0 + omega, omega**2 / (1.0 + omega)
        # objective Phi = F(x) + (a |x - y|^2 - b |x - y_prev|^2) / (2 tau), weighted by m
        center = (a * y - b * y_prev) / (a - b)
        kappa = (a - b) / tau
        const = 0.5 * (a * (m @ y**2) - b * (m @ y_prev**2) - (a - b) * (m @ center**2)) / tau

        def objective(x):
            E = self.energy.value(x, m)
            H, *_ = self._entropy(x, False)
            return E + H + 0.5 * kappa * float(m @ (x - center) ** 2) + const

        x = self._project(y.copy())
        phi = objective(x)
        info = {"iterations": 0, "residual": math.inf, "converged": False, "reason": ""}
        scale = self.inner_tol * self.length
        shift, last_residual = 0.0, math.inf
        for it in range(1, self.max_inner + 1):
            E, gE, parts = self.energy.evaluate(x, m)
            _, gH, dH, oH = self._entropy(x, True)
            grad = gE + gH + kappa * m * (x - center)
            diag = parts.diag + dH + kappa * m
            free = self._free_set(x, grad)
            residual = tau * float(np.max(np.abs(grad[free]) / m[free], initial=0.0))
            info["iterations"], info["residual"] = it - 1, residual / self.length
            if residual <= scale or (residual <= 1e3 * scale and residual >= 0.5 * last_residual):
                # converged, or stalled at the round-off floor next to the tolerance (tiny
                # end masses of a fine graded mass grid)
                info["converged"] = True
                break
            last_residual = residual
            d = None
            for _ in range(8):
                d = self._newton_direction(diag + shift * kappa * m, oH, parts, grad, free)
                if d is not None and float(grad @ d) < 0:
                    break
                shift = max(1.0, 10 * shift)
                d = None
            if d is None:
                info["reason"] = "no descent direction"
                return None, info
            x_new, phi_new = self._line_search(x, d, grad, phi, objective)
            if x_new is None:
                if residual <= 1e3 * scale:  # converged to round-off of the objective
                    info["converged"] = True
                    break
                info["reason"] = "line search failed"
                return None, info
            shift = 0.0 if shift <= 1.0 else shift / 10
            x, phi = x_new, phi_new
        else:
            info["reason"] = f"Newton did not converge in {self.max_inner} iterations"
            return None, info
        if self.T == 0 and np.any(np.diff(x) < -1e-12 * self.length):
            info["converged"] = False
            info["reason"] = "atoms crossed (step too large for the non-convex energy)"
            return None, info
        if not np.all(np.isfinite(x)):
            info["reason"] = "non-finite atoms"
            return None, info
        info["distance2"] = self.distance2(x, y)
        # F at the solution, from the objective already evaluated there (saves an energy
        # evaluation per step: the two-layer features are the expensive part)
        info["free_energy"] = phi - 0.5 * kappa * float(m @ (x - center) ** 2) - const
        return x, info

    def _free_set(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Atoms not held at a wall (only without diffusion: the entropy keeps them inside)."""
        if self.T > 0:
            return np.ones(x.size, dtype=bool)
        eps = 2e-12 * self.length
        at_lo = (x <= self.lower + eps) & (grad > 0)
        at_hi = (x >= self.upper - eps) & (grad < 0)
        return ~(at_lo | at_hi)

    def _newton_direction(self, diag, off, parts: HessianParts, grad, free) -> np.ndarray | None:
        """Solve ``H d = -grad`` on the free atoms (the held ones do not move)."""
        n = diag.size
        fixed = ~free
        diag = diag.copy()
        off = off.copy()
        g = np.where(free, grad, 0.0)
        if np.any(fixed):
            diag[fixed] = 1.0
            off[fixed[:-1] | fixed[1:]] = 0.0
        try:
            if parts.dense is not None:
                H = parts.dense.copy()
                H[np.diag_indices(n)] += diag
                idx = np.arange(n - 1)
                H[idx, idx + 1] += off
                H[idx + 1, idx] += off
                if np.any(fixed):
                    H[fixed, :] = 0.0
                    H[:, fixed] = 0.0
                    H[fixed, fixed] = 1.0
                d = -sla.solve(H, g, assume_a="sym", check_finite=False)
            else:
                band = np.zeros((3, n))
                band[0, 1:], band[1], band[2, :-1] = off, diag, off
                if parts.P is None or parts.P.shape[0] == 0:
                    d = -sla.solve_banded((1, 1), band, g, check_finite=False)
                else:
                    P = np.where(free, parts.P, 0.0)
                    Q = np.where(free, parts.Q, 0.0)
                    sol = sla.solve_banded((1, 1), band, np.column_stack([g, P.T]), check_finite=False)
                    z, Z = sol[:, 0], sol[:, 1:]
                    small = np.eye(P.shape[0]) + Q @ Z
                    d = -(z - Z @ np.linalg.solve(small, Q @ z))
        except (np.linalg.LinAlgError, ValueError):
            return None
        if not np.all(np.isfinite(d)):
            return None
        return np.where(free, d, 0.0)

    def _project(self, x: np.ndarray) -> np.ndarray:
        """Without diffusion, clip to the walls, kept ``1e-12`` of the length inside so that
        derivatives at a held atom are the one-sided ones of the interior (a radial
        potential's slope at ``r = 0+``, not the symmetric value at 0)."""
        if self.T > 0:
            return x
        eps = 1e-12 * self.length
        return np.clip(x, self.lower + eps, self.upper - eps)

    def _line_search(self, x, d, grad, phi, objective):
        """Armijo backtracking (projected onto the walls without diffusion)."""
        alpha = 1.0
        slope = float(grad @ d)
        if -slope <= 1e-13 * max(1.0, abs(phi)):
            # the predicted decrease is below the round-off of the objective: Armijo cannot
            # tell, so the Newton step is taken if it is feasible (quadratic convergence)
            trial = self._project(x + d)
            val = objective(trial)
            if np.isfinite(val) and val <= phi + 1e-12 * max(1.0, abs(phi)):
                return trial, val
        for _ in range(40):
            trial = self._project(x + alpha * d)
            val = objective(trial)
            if np.isfinite(val) and val <= phi + _ARMIJO * float(grad @ (trial - x)):
                return trial, val
            alpha *= 0.5
        return None, phi
