r"""The noiseless limit :math:`\beta = \infty`: stationarity, the mean-field certificate
and the global minimum of the discrete energy over all measures on the grid.

Without noise the distributional dynamics is the Wasserstein gradient flow of the energy

.. math::

    \partial_t\rho = \xi\,\nabla\cdot\big(\rho\,\nabla\Psi[\rho]\big), \qquad
    \Psi[\rho] = V + \int U(\cdot,\theta')\,\rho(d\theta'), \qquad
    E[\rho] = \int V\,d\rho + \tfrac12\iint U\,d\rho\,d\rho ,

and for two-layer networks the risk is :math:`R(\rho) = R_\# + 2E[\rho] = R_\# + 2\int
V\rho + \iint U\rho\rho`. Stationary measures need not have densities: any
:math:`\rho` with :math:`\nabla\Psi[\rho] = 0` on its support is stationary, so point
masses, and measures sitting on a cone point of :math:`\Psi`, are stationary too.

**Theorem** (Mei, Montanari & Nguyen, PNAS 115, 2018, their characterisation of the
global minimisers of the risk, proved in the SI). Every global minimiser :math:`\rho^*` of :math:`R` over
probability measures satisfies

.. math:: \operatorname{supp}\rho^* \subseteq \arg\min_\theta \Psi(\theta;\rho^*).

The condition is the first-order (KKT) condition of the linear-constraint problem
:math:`\min\{E(\rho):\rho\ge0, \int\rho = 1\}`; when :math:`U` is a positive
semidefinite kernel (for two-layer nets :math:`U(\theta,\theta') =
\mathbb{E}[\sigma_*(x;\theta)\sigma_*(x;\theta')]` is a Gram kernel, hence PSD) the
risk is convex in :math:`\rho`, so the condition is also sufficient: a measure whose
support lies in :math:`\arg\min\Psi[\rho]` is a global minimiser. Stationary points of
the flow that are not global minimisers are therefore detected by
:math:`\max_{\operatorname{supp}\rho}\Psi[\rho] > \min\Psi[\rho]` (:func:`certificate`).

**The discrete problem.** On the grid (cell averages :math:`\rho_i`, weights
:math:`p_i = \rho_i|C|`) the energy of :mod:`ddsolve.grid.grid_model` is the quadratic

.. math:: E_h(p) = V^\top p + \tfrac12 p^\top K p, \qquad \nabla E_h(p) = V + Kp = \Psi,

minimised over the scaled simplex :math:`\{p\ge0, \sum_i p_i = M\}` (:func:`global_minimum`).
Its KKT conditions are exactly the discrete form of the theorem: :math:`\Psi_i = \lambda`
on the support, :math:`\Psi_i \ge \lambda` elsewhere. It is a convex QP when :math:`K` is
positive semidefinite on the tangent space :math:`\{\sum_i q_i = 0\}`; the Frank–Wolfe
duality gap of :math:`f = 2E_h` (the risk minus :math:`R_\#`),

.. math:: g(p) = \nabla f(p)^\top p - M\min_i \nabla f_i(p)
          = 2\sum_i p_i\,(\Psi_i - \min_j\Psi_j) \;\ge\; f(p) - f^*,

bounds the risk gap of any state by the mass-weighted excess of :math:`\Psi` over its
minimum (Frank & Wolfe, Naval Res. Logist. Q. 3, 1956; Jaggi, ICML 2013, §2). The QP is
solved by pairwise Frank–Wolfe, whose iterates stay sparse (Lacoste-Julien & Jaggi,
NeurIPS 2015), then finished by exact solves of the equality-constrained KKT system on
the identified support and a primal active-set method (Nocedal & Wright, *Numerical
Optimization*, 2nd ed., 2006, Alg. 16.3), which makes the answer accurate to
round-off. Kernels of low numerical rank (two-layer nets) make the minimiser
non-unique; starting from a point mass, the method typically returns one of small
support.

Examples
--------
>>> from ddsolve.grid import cartesian, GridModel
>>> from ddsolve.model import Model, QuadraticPotential
>>> gm = GridModel(Model(QuadraticPotential(1.0, 0.27)), cartesian([-1.0, 1.0], 20))
>>> qp = global_minimum(gm)        # U = 0: a point mass in the cell of argmin V
>>> qp.support.tolist(), qp.gap <= 1e-12, qp.convex
([12], True, True)
>>> certificate(gm, qp.rho).gap
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from ddsolve.grid.grid_model import GridModel
from ddsolve.grid.interaction import (
    ConvolutionInteraction,
    DenseInteraction,
    SeparableInteraction,
)
from ddsolve.schemes.evolve import check_density, evolve

__all__ = [
    "RelaxationResult",
    "relax_to_stationarity",
    "Certificate",
    "certificate",
    "support_mask",
    "MinimumResult",
    "global_minimum",
    "Classification",
    "classify",
    "DENSE_QP_MAX",
    "DENSE_EIG_MAX",
    "CONVEXITY_TOL",
]

DENSE_QP_MAX = 4000
"""Grids up to this many cells use the dense matrix :math:`K` for operators that can
only be applied (FFT); larger ones are handled matrix-free."""

DENSE_EIG_MAX = 2000
"""Up to this many cells the convexity check diagonalises the dense :math:`K` on the
tangent space; beyond, it uses Lanczos iterations."""

CONVEXITY_TOL = 1e-10
r""":math:`K` counts as PSD on the tangent space when its smallest eigenvalue there is
:math:`\ge -` this times its largest absolute eigenvalue."""

LANCZOS_STEPS = 150
"""Lanczos steps of the convexity check on grids too large for a dense eigensolver."""

_EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------
def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _count(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def _noiseless(grid_model: GridModel, what: str) -> None:
    if grid_model.temperature > 0:
        raise ValueError(
            f"{what} is the beta = inf criterion; grid_model has beta = {grid_model.model.beta:g} "
            f"(allowed: beta = inf)"
        )


# ---------------------------------------------------------------------------------------
# (a) relaxation to stationarity
# ---------------------------------------------------------------------------------------
@dataclass
class RelaxationResult:
    """Outcome of :func:`relax_to_stationarity`.

    Attributes
    ----------
    rho : numpy.ndarray
        Final cell averages, the grid's shape.
    t : float
        Final time.
    converged : bool
        Both stopping criteria met before ``t_max``.
    reason : str
        Why the relaxation stopped.
    history : list of dict
        One row per chunk (and the initial state): ``t``, ``dissipation`` (per unit
        mass), ``change`` (L1 change over the chunk per unit time; NaN for the first
        row), ``energy`` and, when the model has one, ``risk``.
    steps : int
        Time steps taken in total.
    """

    rho: np.ndarray
    t: float
    converged: bool
    reason: str
    history: list[dict[str, float]] = field(repr=False)
    steps: int = 0

    def column(self, key: str) -> np.ndarray:
        """One column of :attr:`history` as an array."""
        return np.array([row[key] for row in self.history], dtype=float)


def _history_row(grid_model: GridModel, rho: np.ndarray, t: float, change: float) -> dict[str, float]:
    mass = grid_model.mass(rho)
    energy = grid_model.energy(rho)
    row = {"t": float(t), "dissipation": grid_model.dissipation(rho) / mass,
           "change": float(change), "energy": energy}
    if grid_model.model.has_risk:
        row["risk"] = grid_model.model.risk_offset + 2.0 * energy
    return row


def relax_to_stationarity(
    grid_model: GridModel,
    rho0: np.ndarray,
    *,
    t_max: float,
    dissipation_tol: float,
    change_tol: float,
    chunk: float = 1.0,
    growth: float = 1.0,
    t_start: float = 0.0,
    evolve_options: Mapping[str, Any] | None = None,
) -> RelaxationResult:
    r"""Evolve ``rho0`` in chunks until it is stationary to the given tolerances.

    After every chunk :math:`[t, t+\tau]` the relaxation stops when both

    .. math:: \frac{1}{M}\int\rho\,|\nabla\mu|^2 < \text{dissipation\_tol}, \qquad
              \frac{\|\rho(t+\tau) - \rho(t)\|_{L^1}}{\tau} < \text{change\_tol},

    with :math:`M` the mass and :math:`\mu = \Psi + \beta^{-1}\log(\rho/m)` (the
    discrete dissipation :meth:`GridModel.dissipation`, zero at discrete stationary
    states, also for mass held against a wall or on a cone point of :math:`\Psi`).

    Parameters
    ----------
    grid_model : GridModel
    rho0 : numpy.ndarray
        Initial cell averages, shape ``grid_model.coords.shape``.
    t_max : float
        Final time if the criteria are not met (then ``converged`` is False; no
        exception).
    dissipation_tol, change_tol : float
        The two tolerances (> 0).
    chunk : float
        Length of the first chunk (> 0).
    growth : float
        Each chunk is ``growth`` (>= 1) times longer than the previous one: slow
        relaxations reach long times in few checks.
    t_start : float
        Time of ``rho0``.
    evolve_options : mapping, optional
        Keyword arguments of :func:`ddsolve.schemes.evolve.evolve` (``order``, ``cfl``...).

    Returns
    -------
    RelaxationResult

    Raises
    ------
    ValueError
        For non-positive tolerances, chunk or ``t_max <= t_start``, ``growth < 1``, or
        an invalid ``rho0``.
    """
    rho = check_density(grid_model, rho0, "rho0").copy()
    dissipation_tol = _positive("dissipation_tol", dissipation_tol)
    change_tol = _positive("change_tol", change_tol)
    tau = _positive("chunk", chunk)
    growth = float(growth)
    if not (growth >= 1 and math.isfinite(growth)):
        raise ValueError(f"growth must be a finite number >= 1, got {growth}")
    if not (math.isfinite(t_max) and t_max > t_start):
        raise ValueError(f"t_max must be finite and > t_start = {t_start}, got {t_max}")
    options = dict(evolve_options or {})
    for key in ("t_start", "t_final", "tracker"):
        if key in options:
            raise ValueError(f"evolve_options may not set {key!r} (relax_to_stationarity does)")
    vol = grid_model.coords.cell_volume
    t, steps = float(t_start), 0
    history = [_history_row(grid_model, rho, t, math.nan)]
    while True:
        t_next = min(t + tau, t_max)
        if t_max - t_next < 1e-9 * max(1.0, abs(t_max)):
            t_next = t_max
        new, info = evolve(grid_model, rho, t_next, t_start=t, **options)
        steps += int(info.get("steps", 0) or 0)
        change = float(np.sum(np.abs(new - rho))) * vol / (t_next - t)
        rho, t = new, t_next
        row = _history_row(grid_model, rho, t, change)
        history.append(row)
        stationary = row["dissipation"] < dissipation_tol and change < change_tol
        status = (f"dissipation per unit mass {row['dissipation']:.3e} (tol {dissipation_tol:g}), "
                  f"L1 change rate {change:.3e} (tol {change_tol:g}) at t = {t:g}")
        if stationary:
            return RelaxationResult(rho, t, True, "stationary: " + status, history, steps)
        if t >= t_max:
            return RelaxationResult(rho, t, False, "t_max reached: " + status, history, steps)
        tau *= growth


# ---------------------------------------------------------------------------------------
# (b) the mean-field certificate
# ---------------------------------------------------------------------------------------
@dataclass
class Certificate:
    r"""The condition :math:`\operatorname{supp}\rho\subseteq\arg\min\Psi[\rho]` on the grid.

    Attributes
    ----------
    gap : float
        :math:`\max_{i\in S}\Psi_i - \min_i\Psi_i \ge 0` over the support :math:`S`; 0
        means the support lies in the (grid) argmin of :math:`\Psi`.
    weighted_gap : float
        :math:`\frac1M\sum_i p_i(\Psi_i - \min\Psi)`: half the Frank–Wolfe duality gap per
        unit mass, an upper bound on :math:`(E_h(\rho) - E_h^*)/M` when the problem is
        convex (risk gap :math:`\le 2M\cdot` this).
    psi_min : float
        :math:`\min_i\Psi_i`.
    argmin_index : tuple of int
        Grid index of the cell attaining :math:`\min\Psi`.
    argmin_center : numpy.ndarray, shape (ndim,)
        Its centre.
    worst_index : tuple of int
        Support cell attaining :math:`\max_S\Psi`.
    worst_center : numpy.ndarray, shape (ndim,)
    support_cells : int
        Number of cells in :math:`S`.
    support_extent : numpy.ndarray, shape (ndim, 2)
        Per axis, the lowest and highest cell edge of :math:`S` (its bounding box).
    mass_tol : float
        :math:`S` is the smallest set of cells holding ``1 - mass_tol`` of the mass.
    """

    gap: float
    weighted_gap: float
    psi_min: float
    argmin_index: tuple[int, ...]
    argmin_center: np.ndarray
    worst_index: tuple[int, ...]
    worst_center: np.ndarray
    support_cells: int
    support_extent: np.ndarray
    mass_tol: float


def support_mask(grid_model: GridModel, rho: np.ndarray, mass_tol: float) -> np.ndarray:
    """Boolean mask (grid shape) of the fewest cells holding ``1 - mass_tol`` of the mass
    of ``rho``."""
    p = np.asarray(rho, dtype=float).ravel()
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(p[order])
    n = int(np.searchsorted(cum, (1.0 - mass_tol) * cum[-1])) + 1
    mask = np.zeros(p.size, bool)
    mask[order[: min(n, p.size)]] = True
    return mask.reshape(np.shape(rho))


def _extent(grid_model: GridModel, mask: np.ndarray) -> np.ndarray:
    coords = grid_model.coords
    out = np.empty((coords.ndim, 2))
    for a, axis in enumerate(coords.axes):
        hit = np.flatnonzero(np.any(np.moveaxis(mask, a, 0).reshape(axis.cells, -1), axis=1))
        edges = axis.edges
        out[a] = edges[hit[0]], edges[hit[-1] + 1]
    return out


def certificate(grid_model: GridModel, rho: np.ndarray, mass_tol: float = 1e-10) -> Certificate:
    r"""The mean-field certificate of a state: how far its support is from
    :math:`\arg\min\Psi[\rho]`.

    Parameters
    ----------
    grid_model : GridModel
        A noiseless model (``beta = inf``).
    rho : numpy.ndarray
        Cell averages, shape ``grid_model.coords.shape``.
    mass_tol : float
        The support is the smallest set of cells holding ``1 - mass_tol`` of the mass
        (``0 <= mass_tol < 1``; 0 takes every cell with positive mass).

    Returns
    -------
    Certificate
        ``gap = 0`` iff :math:`\Psi` is minimal on the whole support; by the theorem of
        Mei, Montanari & Nguyen (module docstring) ``gap > 0`` proves that ``rho`` is not
        a global minimiser, and for a PSD kernel ``gap = 0`` proves that it is one.

    Raises
    ------
    ValueError
        For an invalid ``rho``, ``mass_tol`` outside ``[0, 1)`` or a model with finite beta.
    """
    _noiseless(grid_model, "the certificate")
    rho = check_density(grid_model, rho, "rho")
    mass_tol = float(mass_tol)
    if not 0 <= mass_tol < 1:
        raise ValueError(f"mass_tol must be in [0, 1), got {mass_tol}")
    psi = grid_model.psi(rho)
    if mass_tol == 0:
        mask = rho > 0
    else:
        mask = support_mask(grid_model, rho, mass_tol)
    centers = grid_model.coords.cell_centers()
    i_min = np.unravel_index(int(np.argmin(psi)), psi.shape)
    masked = np.where(mask, psi, -np.inf)
    i_max = np.unravel_index(int(np.argmax(masked)), psi.shape)
    psi_min = float(psi[i_min])
    mass = grid_model.mass(rho)
    weighted = grid_model.coords.integrate(rho * (psi - psi_min)) / mass
    return Certificate(
        gap=max(0.0, float(psi[i_max]) - psi_min), weighted_gap=max(0.0, weighted),
        psi_min=psi_min, argmin_index=tuple(int(i) for i in i_min),
        argmin_center=centers[i_min].copy(), worst_index=tuple(int(i) for i in i_max),
        worst_center=centers[i_max].copy(), support_cells=int(mask.sum()),
        support_extent=_extent(grid_model, mask), mass_tol=mass_tol,
    )


# ---------------------------------------------------------------------------------------
# (c) the global minimum: a QP on the scaled simplex
# ---------------------------------------------------------------------------------------
class _Quadratic:
    r"""The matrix :math:`K` of :math:`E_h(p) = V^\top p + \frac12 p^\top Kp` in the
    representation the interaction operator offers: ``zero``, ``dense``, ``lowrank``
    (:math:`K = F^\top G`) or ``operator`` (applied only)."""

    def __init__(self, grid_model: GridModel) -> None:
        op = grid_model.operator
        coords = grid_model.coords
        self.M = coords.size
        self.vol = coords.cell_volume
        self.shape = coords.shape
        self.op = op
        if op is None:
            self.kind = "zero"
        elif isinstance(op, SeparableInteraction):
            self.kind, self.F, self.G = "lowrank", op.F, op.G
        elif isinstance(op, DenseInteraction):
            self.kind, self.K = "dense", op.K
        elif isinstance(op, ConvolutionInteraction) and self.M <= DENSE_QP_MAX:
            K = op.toeplitz_matrix()
            self.kind, self.K = "dense", 0.5 * (K + K.T)
        elif self.M <= DENSE_QP_MAX:
            K = op.matrix()
            self.kind, self.K = "dense", 0.5 * (K + K.T)
        else:
            self.kind = "operator"

    def matvec(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "zero":
            return np.zeros_like(p)
        if self.kind == "dense":
            return self.K @ p
        if self.kind == "lowrank":
            return (self.G @ p) @ self.F
        return self.op.apply(p.reshape(self.shape) / self.vol).ravel()

    def diagonal(self) -> np.ndarray:
        r""":math:`K_{jj}` (zeros for an apply-only operator: only used to pick a start)."""
        if self.kind == "dense":
            return np.diag(self.K).copy()
        if self.kind == "lowrank":
            return np.einsum("ij,ij->j", self.F, self.G)
        return np.zeros(self.M)

    def column(self, j: int) -> np.ndarray:
        """:math:`K_{:,j}`."""
        if self.kind == "dense":
            return self.K[j]  # K is symmetric: the contiguous row
        if self.kind == "lowrank":
            return self.G[:, j] @ self.F
        e = np.zeros(self.M)
        e[j] = 1.0
        return self.matvec(e)

    def sub(self, idx: np.ndarray) -> np.ndarray:
        """:math:`K_{SS}`."""
        if self.kind == "zero":
            return np.zeros((idx.size, idx.size))
        if self.kind == "dense":
            return self.K[np.ix_(idx, idx)]
        if self.kind == "lowrank":
            A = self.F[:, idx].T @ self.G[:, idx]
            return 0.5 * (A + A.T)
        cols = np.empty((self.M, idx.size))
        for k, j in enumerate(idx):
            e = np.zeros(self.M)
            e[j] = 1.0
            cols[:, k] = self.matvec(e)
        A = cols[idx]
        return 0.5 * (A + A.T)

    def tangent_spectrum(self) -> tuple[float, float]:
        r"""Smallest and largest eigenvalue of :math:`K` on :math:`\{\sum q = 0\}`."""
        M = self.M
        if self.kind == "zero" or M < 2:
            return 0.0, 0.0
        if self.kind == "dense" and M <= DENSE_EIG_MAX:
            lam = scipy.linalg.eigvalsh(_reduce(self.K))
            return float(lam[0]), float(lam[-1])
        if self.kind == "lowrank":
            # nonzero spectrum of P F^T G P equals that of G P F^T (r x r)
            one = np.ones(M) / math.sqrt(M)
            Fp = self.F - np.outer(self.F @ one, one)
            Gp = self.G - np.outer(self.G @ one, one)
            lam = np.sort(np.linalg.eigvals(Gp @ Fp.T).real)
            lo, hi = float(lam[0]), float(lam[-1])
            if self.F.shape[0] < M - 1:  # the tangent space has directions K ignores
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            return lo, hi
        return self._lanczos_spectrum()

    def _lanczos_spectrum(self, steps: int = LANCZOS_STEPS) -> tuple[float, float]:
        r"""Extreme Ritz values of :math:`PKP` on the tangent space (:math:`P = I -
        \mathbf{1}\mathbf{1}^\top/M`) after ``steps`` Lanczos steps with full
        reorthogonalisation. Ritz values are Rayleigh quotients: a negative smallest one
        proves that :math:`K` is not PSD there; a non-negative one makes convexity
        probable, not certain (the smallest eigenvalue may be lower)."""
        M = self.M
        one = np.ones(M) / math.sqrt(M)
        k = min(steps, M - 1)
        Qb = np.zeros((k + 1, M))
        q = np.cos(np.arange(M) * 0.7 + 0.3)
        q -= one * (one @ q)
        Qb[0] = q / np.linalg.norm(q)
        alpha, beta = np.zeros(k), np.zeros(k)
        n = k
        for j in range(k):
            w = self.matvec(Qb[j])
            w -= one * (one @ w)
            alpha[j] = Qb[j] @ w
            w -= Qb[: j + 1].T @ (Qb[: j + 1] @ w)  # full reorthogonalisation (twice)
            w -= Qb[: j + 1].T @ (Qb[: j + 1] @ w)
            beta[j] = np.linalg.norm(w)
            if beta[j] <= 1e-13 * max(abs(alpha[: j + 1]).max(), 1e-300):
                n = j + 1  # an invariant subspace: the Ritz values are exact
                break
            Qb[j + 1] = w / beta[j]
        theta = scipy.linalg.eigvalsh_tridiagonal(alpha[:n], beta[: n - 1])
        return float(theta[0]), float(theta[-1])


def _householder(s: int) -> np.ndarray:
    r"""``v`` with :math:`H = I - 2vv^\top` symmetric orthogonal, :math:`He_{s-1} =
    \mathbf 1/\sqrt s`: the first ``s - 1`` columns of :math:`H` are an orthonormal basis
    of :math:`\{\sum q = 0\}`."""
    v = np.full(s, 1.0 / math.sqrt(s))
    v[-1] -= 1.0
    return v / np.linalg.norm(v)


def _reflect(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:math:`Hx` along the first axis."""
    return x - 2.0 * np.outer(v, v @ x) if x.ndim == 2 else x - 2.0 * v * (v @ x)


def _reduce(A: np.ndarray) -> np.ndarray:
    r""":math:`(HAH)_{:s-1,:s-1}`: ``A`` on the tangent space in an orthonormal basis."""
    v = _householder(A.shape[0])
    B = _reflect(v, _reflect(v, A).T).T
    B = B[:-1, :-1]
    return 0.5 * (B + B.T)


def _fw_gap(g: np.ndarray, p: np.ndarray, mass: float) -> float:
    r""":math:`\nabla E^\top p - M\min\nabla E` (the gap of :math:`E`, half that of
    :math:`f = 2E`)."""
    return float(g @ p - mass * g.min())


def _pairwise_frank_wolfe(Q: _Quadratic, V: np.ndarray, p: np.ndarray, mass: float,
                          max_iter: int, target: float) -> tuple[np.ndarray, int]:
    r"""Pairwise Frank–Wolfe with exact line search (Lacoste-Julien & Jaggi, NeurIPS
    2015, Alg. 2) from ``p`` until the duality gap of :math:`E` is at most ``target``:
    each step moves mass from the support cell of largest :math:`\Psi` to the cell of
    smallest :math:`\Psi`, so the iterates stay sparse."""
    p = p.copy()
    g = V + Q.matvec(p)
    for k in range(1, max_iter + 1):
        if k % 200 == 0:  # no drift of the incrementally updated gradient
            g = V + Q.matvec(p)
        s = int(np.argmin(g))
        v = int(np.argmax(np.where(p > 0, g, -np.inf)))
        if _fw_gap(g, p, mass) <= target or v == s:
            return p, k - 1
        col_s, col_v = Q.column(s), Q.column(v)
        curv = col_s[s] + col_v[v] - 2.0 * col_s[v]
        slope = g[v] - g[s]
        gamma = p[v] if curv <= 0 else min(p[v], slope / curv)
        p[s] += gamma
        p[v] = 0.0 if gamma == p[v] else p[v] - gamma
        g += gamma * (col_s - col_v)
    return p, max_iter


def _energy(Q: _Quadratic, V: np.ndarray, p: np.ndarray) -> float:
    return float(V @ p + 0.5 * p @ Q.matvec(p))


def _direction(A: np.ndarray, gS: np.ndarray, gscale: float) -> tuple[np.ndarray, bool]:
    r"""Step on the support: ``(d, newton)`` with :math:`\sum d = 0`. ``newton`` is True
    for the Newton step of the equality-constrained QP (minimiser on the support at
    step 1), False for a direction of negative or zero curvature along which the energy
    decreases without bound until a weight reaches 0."""
    s = gS.size
    v = _householder(s)
    B = _reduce(A)
    b = _reflect(v, gS)[:-1]
    lam, W = scipy.linalg.eigh(B)
    lam_tol = 1e-11 * max(float(np.abs(lam).max()), 1e-300)
    c = W.T @ b

    def lift(y: np.ndarray) -> np.ndarray:
        return _reflect(v, np.append(y, 0.0))

    if lam[0] < -lam_tol:  # negative curvature (non-convex on the support)
        w = W[:, 0] * (-1.0 if c[0] > 0 else 1.0)
        return lift(w), False
    null = lam <= lam_tol
    if np.linalg.norm(c[null]) > 1e-13 * gscale * math.sqrt(s):
        return lift(-W[:, null] @ c[null]), False
    pos = ~null
    return lift(-W[:, pos] @ (c[pos] / lam[pos])), True


def _support_newton(Q: _Quadratic, V: np.ndarray, p: np.ndarray, mass: float, max_iter: int,
                    kkt_tol: float) -> tuple[np.ndarray, int]:
    r"""Fast support identification for convex problems: solve the equality-constrained
    QP on the support, drop every cell whose weight comes out negative, add the cells
    whose multiplier :math:`\Psi_j - \lambda` is negative, repeat. Returns the best
    feasible point found (it need not be optimal: :func:`_active_set` finishes)."""
    S = np.flatnonzero(p > 0)
    best, e_best = p.copy(), _energy(Q, V, p)
    seen: set[bytes] = set()
    for it in range(1, max_iter + 1):
        key = np.sort(S).tobytes()
        if key in seen or S.size < 2:
            return best, it
        seen.add(key)
        g = V + Q.matvec(p)
        d, newton = _direction(Q.sub(S), g[S], max(float(np.abs(g).max()), 1e-300))
        if not newton:
            return best, it
        q = p[S] + d
        neg = q < 0
        if neg.any():
            S = S[~neg]
            p = np.zeros_like(p)
            p[S] = q[~neg]
            p *= mass / p.sum()
            continue
        p = np.zeros_like(p)
        p[S] = q
        e = _energy(Q, V, p)
        if e < e_best:
            best, e_best = p.copy(), e
        g = V + Q.matvec(p)
        lam = float(np.dot(g[S], p[S]) / p.sum())
        viol = g - lam
        viol[S] = np.inf
        add = np.flatnonzero(viol < -kkt_tol)
        if add.size == 0:
            return best, it
        # the worst violators, at most as many as the support holds
        add = add[np.argsort(viol[add])[: max(1, S.size)]]
        S = np.concatenate([S, add])
    return best, max_iter


def _active_set(Q: _Quadratic, V: np.ndarray, p: np.ndarray, mass: float, max_iter: int,
                kkt_tol: float) -> tuple[np.ndarray, int]:
    r"""Primal active-set method on the simplex from a feasible ``p`` (Nocedal & Wright
    2006, Alg. 16.3): Newton steps of the equality-constrained QP on the support,
    clipped where a weight reaches zero (that cell leaves the support), and the cell
    with the most negative multiplier :math:`\Psi_j - \lambda` joins it."""
    p = p.copy()
    S = np.flatnonzero(p > 0)
    optimal_on_S = False
    for it in range(1, max_iter + 1):
        g = V + Q.matvec(p)
        gscale = max(float(np.abs(g).max()), 1e-300)
        if not optimal_on_S and S.size > 1:
            A = Q.sub(S)
            d, newton = _direction(A, g[S], gscale)
            slope, curv = float(g[S] @ d), float(d @ A @ d)
            if slope >= -_EPS * gscale * np.abs(d).sum() * 4 and newton:
                optimal_on_S = True
                continue
            alpha = -slope / curv if curv > 1e-14 * gscale * (d @ d) else math.inf
            neg = d < 0
            ratios = np.where(neg, p[S] / np.where(neg, -d, 1.0), math.inf)
            j = int(np.argmin(ratios))
            blocked = ratios[j] <= alpha
            if not blocked and math.isinf(alpha):
                raise RuntimeError("unbounded active-set direction (no weight decreases)")
            alpha = min(alpha, float(ratios[j]))
            p[S] = p[S] + alpha * d
            if blocked:
                drop = np.zeros(S.size, bool)
                drop[j] = True
                drop |= ratios <= alpha * (1 + 1e-12) + 1e-300
                p[S[drop]] = 0.0
                p[S] = np.maximum(p[S], 0.0)
                S = S[~drop]
                optimal_on_S = False
            else:
                optimal_on_S = newton
            continue
        # optimal on S: check the multipliers of the cells off the support
        lam = float(np.dot(g[S], p[S]) / max(p[S].sum(), 1e-300))
        viol = g - lam
        viol[S] = np.inf
        j = int(np.argmin(viol))
        if viol[j] >= -kkt_tol:
            return p * (mass / p.sum()), it
        S = np.append(S, j)
        optimal_on_S = False
    return p * (mass / p.sum()), max_iter


@dataclass
class MinimumResult:
    r"""The minimum of :math:`E_h` over :math:`\{\rho\ge0, \sum\rho_i|C| = M\}` (or over
    :math:`\rho = \rho_{\rm fixed} + q`, :math:`q \ge 0`).

    Attributes
    ----------
    rho : numpy.ndarray
        The minimiser (cell averages, grid shape; exact zeros off the support).
    energy : float
        :math:`E_h(\rho)`.
    risk : float or None
        :math:`R_\# + 2E_h` for models with a risk.
    gap : float
        Frank–Wolfe duality gap of :math:`f = 2E_h` (risk units) over the free part:
        an upper bound on :math:`f - f^*` if ``convex``.
    kkt_residual : float
        :math:`\max(\max_S|\Psi_i - \lambda|, (\lambda - \min_i\Psi_i)^+)` with
        :math:`\lambda` the mass-weighted mean of :math:`\Psi` on the support :math:`S`
        of the free part.
    multiplier : float
        :math:`\lambda`, the value of :math:`\Psi` on the support (:math:`=\min\Psi`).
    support : numpy.ndarray of int
        Flat indices of the cells where the free part is positive.
    support_centers : numpy.ndarray, shape (n_support, ndim)
    weights : numpy.ndarray, shape (n_support,)
        The free masses :math:`q_i|C|` on those cells.
    iterations : dict
        Iterations of the stages: ``frank_wolfe``, ``support_newton``, ``active_set``.
    convex : bool
        :math:`K` is PSD on the tangent space (then the minimum is global); otherwise
        the answer is a local minimum only.
    tangent_eigenvalues : tuple of float
        Smallest and largest eigenvalue of :math:`K` on :math:`\{\sum q = 0\}`.
    converged : bool
        ``gap <= tol * max(1, |f|)``.
    mass : float
        Total mass (fixed part included).
    fixed_mass : float
        Mass of the fixed part (0 without one).
    """

    rho: np.ndarray
    energy: float
    risk: float | None
    gap: float
    kkt_residual: float
    multiplier: float
    support: np.ndarray
    support_centers: np.ndarray
    weights: np.ndarray
    iterations: dict[str, int]
    convex: bool
    tangent_eigenvalues: tuple[float, float]
    converged: bool
    mass: float
    fixed_mass: float = 0.0


def _kkt(g: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    S = q > 0
    lam = float(np.dot(g[S], q[S]) / q[S].sum())
    res = max(float(np.abs(g[S] - lam).max()), float(max(0.0, lam - g.min())))
    return lam, res


def _solve_qp(Q: _Quadratic, V: np.ndarray, mass: float, q: np.ndarray | None, convex: bool,
              max_iter: int) -> tuple[np.ndarray, dict[str, int]]:
    r"""Minimise :math:`V^\top q + \frac12 q^\top Kq` on the simplex of mass ``mass``."""
    iters = {"frank_wolfe": 0, "support_newton": 0, "active_set": 0}
    if q is None:  # the best vertex (point mass): E(M e_j) = M V_j + M^2 K_jj / 2
        q = np.zeros(Q.M)
        q[int(np.argmin(mass * V + 0.5 * mass**2 * Q.diagonal()))] = mass
    if Q.kind == "zero":
        q = np.zeros(Q.M)
        q[int(np.argmin(V))] = mass
        return q, iters
    gscale = max(float(np.abs(V + Q.matvec(q)).max()), 1.0)
    q, iters["frank_wolfe"] = _pairwise_frank_wolfe(Q, V, q, mass, max_iter, 1e-8 * gscale * mass)
    # finish: exact KKT solves on the support
    kkt_tol = 1e3 * _EPS * gscale
    q_as = q
    if convex:
        q_as, iters["support_newton"] = _support_newton(Q, V, q, mass, 100, kkt_tol)
    q_as, iters["active_set"] = _active_set(Q, V, q_as, mass, max_iter, kkt_tol)
    e_fw, e_as = _energy(Q, V, q), _energy(Q, V, q_as)
    if e_as <= e_fw + 1e3 * _EPS * max(1.0, abs(e_fw)):
        q = q_as
    return q, iters


def global_minimum(
    grid_model: GridModel,
    mass: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 5000,
    *,
    start: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> MinimumResult:
    r"""Minimise the discrete energy over all non-negative densities of the given mass.

    Solves :math:`\min\{V^\top p + \frac12 p^\top Kp : p\ge 0, \sum_i p_i = \text{mass}\}`
    in the weights :math:`p_i = \rho_i|C|` (the risk :math:`R_\# + 2E_h` over all measures
    on the grid): pairwise Frank–Wolfe from the best point mass, then exact KKT solves
    on the support (drop negative weights, add cells of negative multiplier), and a
    primal active-set method that makes the answer accurate to round-off.

    Parameters
    ----------
    grid_model : GridModel
        Any model; only :math:`V` and :math:`K` enter (the :math:`\beta=\infty` problem).
    mass : float
        Total mass :math:`\sum\rho_i|C|` (> 0), the fixed part included.
    tol : float
        Target duality gap of :math:`f = 2E_h` relative to :math:`\max(1, |f|)`, for the
        ``converged`` flag.
    max_iter : int
        Iteration cap of the Frank–Wolfe and of the active-set stage.
    start : numpy.ndarray, optional
        Initial density of the free part (grid shape; rescaled to its mass), default
        the best point mass. For a non-convex problem different starts may give
        different local minima.
    fixed : numpy.ndarray, optional
        A density held fixed (grid shape): the minimum is over :math:`\rho =
        \rho_{\rm fixed} + q`, :math:`q\ge0` of mass ``mass - mass(fixed)``, e.g. the
        best state reachable while the mass trapped at a cone point stays there.

    Returns
    -------
    MinimumResult

    Raises
    ------
    ValueError
        For non-positive ``mass`` or ``tol``, ``max_iter < 1``, or an invalid ``start``
        or ``fixed`` (wrong shape, negative, or holding all the mass).

    Notes
    -----
    Cost: the convexity check is one eigenvalue problem of size :math:`M-1` for dense
    :math:`K` (about 0.1 s for :math:`M = 1000`), of size :math:`r` for separable
    :math:`K = F^\top G`; a Frank–Wolfe step costs one column of :math:`K`; a KKT solve
    one eigenproblem of the size of the support.
    """
    mass = _positive("mass", mass)
    tol = _positive("tol", tol)
    max_iter = _count("max_iter", max_iter)
    Q = _Quadratic(grid_model)
    vol = grid_model.coords.cell_volume
    V = np.asarray(grid_model.V, dtype=float).ravel()
    p_fixed = np.zeros(Q.M)
    if fixed is not None:
        p_fixed = check_density(grid_model, fixed, "fixed").ravel() * vol
        if not p_fixed.sum() < mass * (1 - 1e-12):
            raise ValueError(f"fixed holds mass {p_fixed.sum():g}, it must be below mass = {mass:g}")
        V = V + Q.matvec(p_fixed)  # E(p_f + q) = E(p_f) + (V + K p_f).q + q.Kq / 2
    free = mass - float(p_fixed.sum())
    q0 = None
    if start is not None:
        q0 = check_density(grid_model, start, "start").ravel() * vol
        q0 *= free / q0.sum()
    lo, hi = Q.tangent_spectrum()
    convex = bool(lo >= -CONVEXITY_TOL * max(abs(lo), abs(hi), 1e-300))
    q, iters = _solve_qp(Q, V, free, q0, convex, max_iter)
    p = p_fixed + q
    g = V + Q.matvec(q)
    energy = float(np.asarray(grid_model.V).ravel() @ p + 0.5 * p @ Q.matvec(p))
    gap = 2.0 * max(0.0, _fw_gap(g, q, free))
    lam, res = _kkt(g, q)
    support = np.flatnonzero(q > 0)
    centers = grid_model.coords.cell_centers().reshape(-1, grid_model.coords.ndim)[support]
    model = grid_model.model
    return MinimumResult(
        rho=(p / vol).reshape(grid_model.coords.shape), energy=energy,
        risk=model.risk_offset + 2.0 * energy if model.has_risk else None, gap=gap,
        kkt_residual=res, multiplier=lam, support=support, support_centers=centers,
        weights=q[support].copy(), iterations=iters, convex=convex,
        tangent_eigenvalues=(lo, hi), converged=gap <= tol * max(1.0, abs(2.0 * energy)),
        mass=mass, fixed_mass=float(p_fixed.sum()),
    )


# ---------------------------------------------------------------------------------------
# (d) classification of a state against the global minimum
# ---------------------------------------------------------------------------------------
@dataclass
class Classification:
    r"""How a (stationary) state compares with the global minimum of the energy.

    Attributes
    ----------
    is_global : bool
        ``risk_gap <= tol * max(1, |min risk|)`` (energy for models without a risk).
    risk_gap : float
        :math:`R(\rho) - R^*` (:math:`E_h(\rho) - E_h^*` for models without a risk).
    certificate_gap : float
        :attr:`Certificate.gap` of the state.
    value, minimum : float
        Risk (or energy) of the state and of the minimiser.
    quantity : str
        ``"risk"`` or ``"energy"``.
    description : str
        One line for reports.
    certificate : Certificate
    minimum_result : MinimumResult
    """

    is_global: bool
    risk_gap: float
    certificate_gap: float
    value: float
    minimum: float
    quantity: str
    description: str
    certificate: Certificate = field(repr=False)
    minimum_result: MinimumResult = field(repr=False)


def _where(center: np.ndarray, names: tuple[str, ...]) -> str:
    return ", ".join(f"{n} = {c:.4g}" for n, c in zip(names, center))


def classify(grid_model: GridModel, rho: np.ndarray, qp: MinimumResult | None = None,
             tol: float = 1e-6, mass_tol: float = 1e-10) -> Classification:
    r"""Is ``rho`` a global minimiser of the risk (energy) on the grid?

    Parameters
    ----------
    grid_model : GridModel
        A noiseless model (``beta = inf``).
    rho : numpy.ndarray
        The state (cell averages, grid shape), typically a limit of
        :func:`relax_to_stationarity`.
    qp : MinimumResult, optional
        :func:`global_minimum` at the mass of ``rho`` (computed if not given).
    tol : float
        The state counts as global when its gap is at most ``tol * max(1, |R*|)``.
    mass_tol : float
        Passed to :func:`certificate`.

    Returns
    -------
    Classification

    Raises
    ------
    ValueError
        For an invalid ``rho``, non-positive ``tol``, a model with finite beta, or a
        ``qp`` computed at another mass.
    """
    _noiseless(grid_model, "classify")
    rho = check_density(grid_model, rho, "rho")
    tol = _positive("tol", tol)
    mass = grid_model.mass(rho)
    if qp is None:
        qp = global_minimum(grid_model, mass=mass)
    elif not isinstance(qp, MinimumResult):
        raise ValueError(f"qp must be a MinimumResult from global_minimum or None, got {type(qp).__name__}")
    elif abs(qp.mass - mass) > 1e-8 * mass:
        raise ValueError(f"qp was computed at mass {qp.mass:g}, rho has mass {mass:g}")
    cert = certificate(grid_model, rho, mass_tol)
    if grid_model.model.has_risk:
        quantity, value, best = "risk", grid_model.risk(rho), float(qp.risk)
    else:
        quantity, value, best = "energy", grid_model.energy(rho), qp.energy
    gap = value - best
    is_global = gap <= tol * max(1.0, abs(best))
    names = grid_model.coords.names
    if is_global:
        text = (f"global minimiser: {quantity} {value:.6g}, gap to the minimum {gap:.2e}; "
                f"max Psi on the support - min Psi = {cert.gap:.2e}")
    else:
        text = (f"not global: {quantity} {value:.6g} vs minimum {best:.6g} (gap {gap:.4g}); "
                f"Psi on the support exceeds min Psi by {cert.gap:.4g} "
                f"(at {_where(cert.worst_center, names)}; min at {_where(cert.argmin_center, names)})")
    if not qp.convex:
        text += " [kernel not PSD on the tangent space: the minimum is only local]"
    return Classification(bool(is_global), float(gap), cert.gap, float(value), best, quantity,
                          text, cert, qp)
