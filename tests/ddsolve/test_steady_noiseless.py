r"""The noiseless limit (:mod:`ddsolve.steady.noiseless`): the global minimum of the
discrete energy over all measures on the grid, the mean-field certificate
:math:`\operatorname{supp}\rho\subseteq\arg\min\Psi[\rho]`, relaxation to stationarity
and the classification of stationary states.

Exact answers used here (weights :math:`p_i = \rho_i h` on cells of width :math:`h`,
:math:`E_h(p) = V^\top p + \frac12 p^\top Kp`, :math:`V_i = V(x_i)` at the cell centres
and the kernel averaged over both cells by 2-point Gauss–Legendre):

* **Rank-one attraction to the origin.** :math:`V = (x-c)^2/2`, :math:`U = \lambda xy`
  (:math:`\lambda > 0`, a PSD kernel, so the problem is convex). In the continuum,
  Jensen gives :math:`\int V\rho \ge (m-c)^2/2` at mean :math:`m`, with equality for a
  point mass, and :math:`\min_m (m-c)^2/2 + \lambda m^2/2` is at :math:`m = c/(1+\lambda)`.
  On the grid, take :math:`c = (1+\lambda)x_k` for a cell centre :math:`x_k`. The
  kernel averages are exact (a bilinear integrand):
  :math:`V_i = (x_i-c)^2/2`, :math:`K_{ij} = \lambda x_ix_j`. For the point
  mass at :math:`x_k`, :math:`\Psi_i = (x_i-c)^2/2 + \lambda x_kx_i
  = (x_i - x_k)^2/2 + \text{const}` (since :math:`c - \lambda x_k = x_k`), which is
  strictly minimal at :math:`i = k`. So the KKT conditions hold, and by convexity this
  point mass is the unique minimiser, with :math:`E_h^* = (x_k-c)^2/2 +
  \lambda x_k^2/2`.
* **Repulsion in a harmonic trap.** :math:`V = x^2/2`, :math:`U = -|x-y|`, which is
  conditionally positive definite (energy distance), so the problem is convex. In the
  continuum, :math:`\Psi'' = 1 - 2\rho` on the support gives :math:`\rho = 1/2` on
  :math:`[-1, 1]`, with :math:`\Psi = x^2/2 - (x^2+1)/2 = -1/2` there and :math:`\Psi
  = x^2/2 - |x| \ge -1/2` outside: the global minimiser, with energy
  :math:`1/6 - \frac12\cdot\frac14\cdot\frac83 = -1/6`. On a grid with
  :math:`\pm1` on cell edges, exact cell averages would reproduce all of this. The centre
  values of :math:`V` differ from its averages by the constant :math:`h^2/24`, which
  lowers :math:`\Psi` everywhere and the energy by :math:`h^2/24` (mass one). The
  2-point rule is exact on every off-diagonal block of
  :math:`|x-y|` (no sign change there), but on a diagonal block it gives the average
  :math:`h/(2\sqrt3)` instead of :math:`h/3`. That adds the same constant
  :math:`h\,(1/3 - 1/(2\sqrt3))\,p_i` to :math:`\Psi_i` on every support cell
  (:math:`p_i = h/2`), so :math:`\Psi` stays constant on the support. Off the support
  :math:`\Psi_i = x_i^2/2 - |x_i|` exceeds the support value :math:`-1/2 - h^2/24` by at
  least :math:`h^2/8 + h^2/24`, more than that constant. So the discrete minimiser is exactly
  :math:`\rho_i = 1/2` for :math:`|x_i| < 1`, with :math:`E_h^* = -1/6 - h^2/24 +
  \frac12\cdot\frac2h\cdot\frac{h^2}{4}\cdot h(\frac13 - \frac1{2\sqrt3})
  = -1/6 - h^2/24 + \frac{h^2}{4}(\frac13 - \frac{1}{2\sqrt3})`.
* :math:`U = 0`: the minimiser is the point mass in the cell of :math:`\min_i V_i`. A
  point mass in the cell of a *local* minimum of :math:`V_i` is stationary (both
  neighbouring faces carry velocity into it, and their upwind cells are empty). It is
  not global: its certificate gap and its energy gap are both
  :math:`V_{\rm local} - V_{\min}`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from ddsolve.grid import GridModel, cartesian
from ddsolve.model import (
    DoubleWellPotential,
    GaussianKernel,
    Model,
    QuadraticKernel,
    QuadraticPotential,
    make_kernel,
    make_potential,
)
from ddsolve.model.kernels import CallableKernel
from ddsolve.steady import noiseless as nl
from ddsolve.steady.noiseless import (
    certificate,
    classify,
    global_minimum,
    relax_to_stationarity,
)

TILTED_WELL = "(x**2 - 1)**2 + 0.3*x"  # wells at x ~ -1.04 (global) and x ~ +0.96 (local)


def _gm(V, U=None, bounds=(-2.0, 2.0), cells=10, **kw) -> GridModel:
    pot = make_potential(V, 1) if isinstance(V, str) else V
    return GridModel(Model(pot, U), cartesian(list(bounds), cells), **kw)


def _weights(gm, rho):
    return np.asarray(rho).ravel() * gm.coords.cell_volume


@pytest.fixture(params=["all", "no-support-newton", "no-active-set"])
def stages(request, monkeypatch):
    """Run a test with each finishing stage of the QP solver on its own as well."""
    def skip(Q, V, p, mass, max_iter, kkt_tol):
        return p, 0

    if request.param == "no-support-newton":
        monkeypatch.setattr(nl, "_support_newton", skip)
    elif request.param == "no-active-set":
        monkeypatch.setattr(nl, "_active_set", skip)
    return request.param


def _quadratic(gm):
    """``(V, K)`` of :math:`E_h(p) = V^T p + p^T K p / 2`, assembled independently."""
    return gm.V.ravel(), gm.operator.matrix()


# ---------------------------------------------------------------------------------------
# the QP against brute force
# ---------------------------------------------------------------------------------------
def _exhaustive_minimum(V, K, mass=1.0):
    """The minimum over every support: the KKT system on each subset S; feasible
    solutions are candidates, and the optimal support is among them (K is PD)."""
    M, best = V.size, math.inf
    for s in range(1, M + 1):
        for S in itertools.combinations(range(M), s):
            S = list(S)
            A = np.zeros((s + 1, s + 1))
            A[:s, :s], A[:s, s], A[s, :s] = K[np.ix_(S, S)], 1.0, 1.0
            sol = np.linalg.solve(A, np.append(-V[S], mass))
            p = sol[:s]
            if p.min() >= -1e-13:
                best = min(best, float(V[S] @ p + 0.5 * p @ K[np.ix_(S, S)] @ p))
    return best


def _slsqp_minimum(V, K, starts=60, mass=1.0, seed=1):
    rng = np.random.default_rng(seed)

    def fun(p):
        return float(V @ p + 0.5 * p @ K @ p)

    def jac(p):
        return V + K @ p

    cons = {"type": "eq", "fun": lambda p: p.sum() - mass, "jac": lambda p: np.ones_like(p)}
    best = math.inf
    for _ in range(starts):
        x0 = rng.dirichlet(np.full(V.size, 0.5)) * mass
        res = minimize(fun, x0, jac=jac, method="SLSQP", bounds=[(0, mass)] * V.size,
                       constraints=[cons], options={"ftol": 1e-14, "maxiter": 500})
        if res.success:
            best = min(best, fun(np.clip(res.x, 0, None) * mass / np.clip(res.x, 0, None).sum()))
    return best


def test_qp_minimum_matches_exhaustive_search_and_slsqp(stages):
    """10 cells, a tilted double well (non-convex V) and a repulsive Gaussian kernel (PSD):
    the QP minimum equals the exhaustive minimum over all 1023 supports to round-off
    and is never above the best of 60 SLSQP runs."""
    gm = _gm(TILTED_WELL, GaussianKernel(amplitude=1.5, sigma=0.8), cells=10)
    V, K = _quadratic(gm)
    assert np.linalg.eigvalsh(K).min() > 0
    qp = global_minimum(gm)
    exact = _exhaustive_minimum(V, K)
    slsqp = _slsqp_minimum(V, K)
    assert qp.convex
    assert qp.support.size >= 2  # the repulsion spreads the mass: not a trivial vertex
    assert abs(qp.energy - exact) <= 1e-13 * max(1.0, abs(exact))
    assert qp.energy <= slsqp + 1e-13
    assert slsqp - qp.energy <= 1e-8  # SLSQP found the same minimum, to its accuracy
    assert qp.gap <= 1e-12


@pytest.mark.parametrize("case", ["gaussian-dense", "cosine-separable"])
def test_qp_duality_gap_and_kkt(case, stages):
    r"""200 cells: the duality gap is <= 1e-10, and the KKT conditions hold to 1e-9 for
    :math:`\Psi` recomputed by the grid model: :math:`\Psi_i = \lambda` on the support,
    :math:`\ge\lambda` elsewhere."""
    if case == "gaussian-dense":
        gm = _gm(TILTED_WELL, GaussianKernel(amplitude=1.0, sigma=0.5), cells=200)
    else:  # U = cos(x - y) = cos x cos y + sin x sin y: PSD of rank 2, separable, degenerate
        terms = [(lambda x: np.cos(x[..., 0]), lambda y: np.cos(y[..., 0])),
                 (lambda x: np.sin(x[..., 0]), lambda y: np.sin(y[..., 0]))]
        ker = CallableKernel(lambda x, y: np.cos(x[..., 0] - y[..., 0]), terms=terms)
        gm = _gm(TILTED_WELL, ker, cells=200)
        assert gm.operator.method == "separable"
    qp = global_minimum(gm)
    assert qp.convex and qp.converged
    assert qp.gap <= 1e-10
    psi = gm.psi(qp.rho).ravel()
    on = qp.rho.ravel() > 0
    lam = qp.multiplier
    assert np.abs(psi[on] - lam).max() <= 1e-9
    assert psi[~on].min() >= lam - 1e-9
    assert qp.rho.min() >= 0 and abs(gm.mass(qp.rho) - 1.0) <= 1e-13
    assert abs(gm.energy(qp.rho) - qp.energy) <= 1e-12
    # the same minimum through the dense matrix of the same kernel
    dense = global_minimum(GridModel(gm.model, gm.coords, interaction="dense"))
    assert abs(dense.energy - qp.energy) <= 1e-11


def test_matrix_free_path_agrees_with_dense(monkeypatch):
    """Operators that can only be applied (FFT on large grids): forced here on 60 cells."""
    gm = _gm(TILTED_WELL, GaussianKernel(amplitude=1.0, sigma=0.5), cells=60, interaction="fft")
    dense = global_minimum(gm)
    monkeypatch.setattr(nl, "DENSE_QP_MAX", 10)
    free = global_minimum(gm)
    assert abs(free.energy - dense.energy) <= 1e-12
    assert free.gap <= 1e-10 and free.convex
    assert np.allclose(free.tangent_eigenvalues, dense.tangent_eigenvalues, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------
# closed-form minimisers
# ---------------------------------------------------------------------------------------
def test_rank_one_attraction_point_mass_closed_form():
    """V = (x - c)^2/2, U = lam x y with c = (1 + lam) x_k: the point mass at x_k (module
    docstring)."""
    lam, h = 1.0, 0.1
    coords = cartesian([-1.0, 2.0], 30)
    x = coords.axes[0].centers
    k = 14
    c = (1 + lam) * x[k]
    gm = GridModel(Model(QuadraticPotential(1.0, c), make_kernel(f"{lam}*x*y", 1)), coords)
    qp = global_minimum(gm)
    assert qp.convex
    assert qp.support.tolist() == [k]
    assert abs(qp.weights[0] - 1.0) <= 1e-15
    exact = (x[k] - c) ** 2 / 2 + lam * x[k] ** 2 / 2
    assert abs(qp.energy - exact) <= 1e-14
    cert = certificate(gm, qp.rho)
    assert cert.gap == 0.0 and cert.argmin_index == (k,) and cert.support_cells == 1
    assert np.allclose(cert.support_extent, [[x[k] - h / 2, x[k] + h / 2]])


@pytest.mark.parametrize("cells", [40, 80])
def test_repulsion_in_trap_uniform_closed_form(cells, stages):
    """V = x^2/2, U = -|x - y| on [-2, 2]: rho = 1/2 exactly on the cells of [-1, 1],
    E_h = -1/6 - h^2/24 + (h^2/4)(1/3 - 1/(2 sqrt 3)) (module docstring)."""
    gm = _gm(QuadraticPotential(1.0), make_kernel("-abs(z)", 1), cells=cells)
    h = 4.0 / cells
    x = gm.coords.axes[0].centers
    qp = global_minimum(gm)
    assert qp.convex and qp.tangent_eigenvalues[0] > 0
    inside = np.abs(x) < 1
    assert qp.support.tolist() == np.flatnonzero(inside).tolist()
    assert np.abs(qp.rho[inside] - 0.5).max() <= 1e-11
    exact = -1 / 6 - h**2 / 24 + h**2 / 4 * (1 / 3 - 1 / (2 * math.sqrt(3)))
    assert abs(qp.energy - exact) <= 1e-13
    assert certificate(gm, qp.rho).gap <= 1e-12


def test_no_interaction_point_mass_in_argmin_v():
    gm = _gm(TILTED_WELL, None, cells=41)
    qp = global_minimum(gm)
    j = int(np.argmin(gm.V))
    assert qp.support.tolist() == [j] and qp.energy == pytest.approx(gm.V[j], abs=1e-15)
    assert qp.gap == 0.0 and qp.convex


def test_fixed_part_is_kept():
    """U = 0 with 0.3 of the mass held in cell 5: the rest goes to argmin V."""
    gm = _gm(TILTED_WELL, None, cells=41)
    h = gm.coords.cell_volume
    fixed = np.zeros(41)
    fixed[5] = 0.3 / h
    qp = global_minimum(gm, fixed=fixed)
    j = int(np.argmin(gm.V))
    assert qp.fixed_mass == pytest.approx(0.3, rel=1e-14)
    assert qp.energy == pytest.approx(0.3 * gm.V[5] + 0.7 * gm.V[j], abs=1e-14)
    assert qp.rho[5] * h == pytest.approx(0.3, rel=1e-14) and qp.support.tolist() == [j]
    # with a kernel: never below the free minimum, free part satisfies KKT
    gm2 = _gm(TILTED_WELL, GaussianKernel(1.0, 0.5), cells=60)
    fixed2 = np.zeros(60)
    fixed2[50] = 0.2 / gm2.coords.cell_volume
    qf, q = global_minimum(gm2, fixed=fixed2), global_minimum(gm2)
    assert qf.energy >= q.energy - 1e-14 and qf.gap <= 1e-10 and qf.kkt_residual <= 1e-9


# ---------------------------------------------------------------------------------------
# certificate and classification
# ---------------------------------------------------------------------------------------
def test_certificate_separates_global_from_local_stationary_point():
    """U = 0: the point mass in the local well is stationary (zero dissipation, no change
    under the flow) but its certificate gap is V_local - V_min > 0; the global one has 0."""
    gm = _gm(TILTED_WELL, None, cells=41)
    h = gm.coords.cell_volume
    V = gm.V
    interior = np.flatnonzero((V[1:-1] < V[:-2]) & (V[1:-1] < V[2:])) + 1
    assert interior.size == 2
    j_loc = int(interior[np.argmax(V[interior])])
    local = np.zeros(41)
    local[j_loc] = 1 / h
    assert gm.dissipation(local) == 0.0
    res = relax_to_stationarity(gm, local, t_max=5.0, dissipation_tol=1e-14, change_tol=1e-14)
    assert res.converged and np.array_equal(res.rho, local)
    cert = certificate(gm, local)
    assert cert.gap == pytest.approx(V[j_loc] - V.min(), rel=1e-14) and cert.gap > 0.3
    assert cert.worst_index == (j_loc,) and cert.argmin_index == (int(np.argmin(V)),)
    c = classify(gm, local)
    assert not c.is_global and c.quantity == "energy"
    assert c.risk_gap == pytest.approx(V[j_loc] - V.min(), rel=1e-12)
    assert c.description.startswith("not global")
    g = classify(gm, c.minimum_result.rho, c.minimum_result)
    assert g.is_global and g.certificate_gap == 0.0 and abs(g.risk_gap) <= 1e-15


def test_certificate_support_uses_mass_tol():
    """A point mass plus a 1e-12 speck in a worse cell: with mass_tol = 1e-10 the speck is
    not support; with mass_tol = 0 it is."""
    gm = _gm(TILTED_WELL, None, cells=41)
    h = gm.coords.cell_volume
    rho = np.zeros(41)
    j = int(np.argmin(gm.V))
    rho[j], rho[30] = 1 / h, 1e-12 / h
    assert certificate(gm, rho).gap == 0.0
    assert certificate(gm, rho, mass_tol=0).gap == pytest.approx(gm.V[30] - gm.V[j], rel=1e-12)
    cert = certificate(gm, rho)
    assert cert.weighted_gap == pytest.approx(1e-12 * (gm.V[30] - gm.V[j]), rel=1e-6)


# ---------------------------------------------------------------------------------------
# relaxation
# ---------------------------------------------------------------------------------------
def _trap():
    gm = _gm(QuadraticPotential(1.0, 0.23), None, cells=40)
    x = gm.coords.axes[0].centers
    rho0 = np.exp(-(x**2) / (2 * 0.5**2))
    return gm, rho0 / gm.mass(rho0)


def test_relaxation_converges_and_honours_its_stopping_rule():
    gm, rho0 = _trap()
    dtol, ctol = 1e-10, 1e-8
    res = relax_to_stationarity(gm, rho0, t_max=200.0, dissipation_tol=dtol, change_tol=ctol,
                                chunk=0.5, growth=1.3)
    assert res.converged and "stationary" in res.reason and res.t < 200.0
    last = res.history[-1]
    assert last["dissipation"] < dtol and last["change"] < ctol
    for row in res.history[1:-1]:  # stopped at the first chunk meeting both criteria
        assert not (row["dissipation"] < dtol and row["change"] < ctol)
    t = res.column("t")
    assert np.allclose(np.diff(t), 0.5 * 1.3 ** np.arange(t.size - 1))
    assert res.history[0]["t"] == 0.0 and math.isnan(res.history[0]["change"])
    assert abs(gm.mass(res.rho) - 1.0) <= 1e-12
    # the limit is a point mass in the cell of argmin V: the certificate and the QP agree
    c = classify(gm, res.rho)
    assert c.is_global and c.certificate_gap <= 1e-12
    assert c.certificate.argmin_index == (int(np.argmin(gm.V)),)


def test_relaxation_reports_non_convergence():
    gm, rho0 = _trap()
    res = relax_to_stationarity(gm, rho0, t_max=1.0, dissipation_tol=1e-14, change_tol=1e-14,
                                chunk=0.4)
    assert not res.converged and res.t == 1.0 and res.reason.startswith("t_max reached")
    assert res.column("t").tolist() == pytest.approx([0.0, 0.4, 0.8, 1.0])


# ---------------------------------------------------------------------------------------
# non-convex problems
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("interaction", ["dense", "separable"])
def test_nonconvex_kernel_is_detected(interaction, stages):
    r"""Curie–Weiss attraction :math:`\theta|x-y|^2/2` is concave on the tangent space
    (:math:`\iint|x-y|^2\nu\nu/2 = -(\int x\nu)^2` for :math:`\int\nu = 0`): the result
    is flagged ``convex=False`` but is still a KKT point."""
    gm = _gm(DoubleWellPotential(), QuadraticKernel(1.0), cells=60, interaction=interaction)
    assert gm.operator.method == interaction
    qp = global_minimum(gm)
    assert not qp.convex and qp.tangent_eigenvalues[0] < -1e-3
    K = gm.operator.matrix()
    P = np.eye(60) - 1 / 60
    lam = np.linalg.eigvalsh(P @ K @ P)
    assert qp.tangent_eigenvalues[0] == pytest.approx(lam[0], rel=1e-8)
    assert qp.kkt_residual <= 1e-9 and qp.gap <= 1e-10
    assert "only local" in classify(gm, qp.rho, qp).description


# ---------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------
def test_bad_arguments_name_the_argument():
    gm, rho0 = _trap()
    with pytest.raises(ValueError, match="mass"):
        global_minimum(gm, mass=0.0)
    with pytest.raises(ValueError, match="tol"):
        global_minimum(gm, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        global_minimum(gm, max_iter=0)
    with pytest.raises(ValueError, match="start"):
        global_minimum(gm, start=np.ones(3))
    with pytest.raises(ValueError, match="fixed"):
        global_minimum(gm, fixed=2 * rho0)
    with pytest.raises(ValueError, match="dissipation_tol"):
        relax_to_stationarity(gm, rho0, t_max=1.0, dissipation_tol=0.0, change_tol=1.0)
    with pytest.raises(ValueError, match="change_tol"):
        relax_to_stationarity(gm, rho0, t_max=1.0, dissipation_tol=1.0, change_tol=math.nan)
    with pytest.raises(ValueError, match="chunk"):
        relax_to_stationarity(gm, rho0, t_max=1.0, dissipation_tol=1.0, change_tol=1.0, chunk=-1)
    with pytest.raises(ValueError, match="t_max"):
        relax_to_stationarity(gm, rho0, t_max=0.0, dissipation_tol=1.0, change_tol=1.0)
    with pytest.raises(ValueError, match="growth"):
        relax_to_stationarity(gm, rho0, t_max=1.0, dissipation_tol=1.0, change_tol=1.0, growth=0.5)
    with pytest.raises(ValueError, match="rho0"):
        relax_to_stationarity(gm, -rho0, t_max=1.0, dissipation_tol=1.0, change_tol=1.0)
    with pytest.raises(ValueError, match="mass_tol"):
        certificate(gm, rho0, mass_tol=1.0)
    with pytest.raises(ValueError, match="tol"):
        classify(gm, rho0, tol=0.0)
    with pytest.raises(ValueError, match="qp"):
        classify(gm, rho0, qp=global_minimum(gm, mass=2.0))
    noisy = GridModel(Model(QuadraticPotential(1.0), beta=2.0), gm.coords)
    with pytest.raises(ValueError, match="beta"):
        certificate(noisy, rho0)
    with pytest.raises(ValueError, match="beta"):
        classify(noisy, rho0)


# ---------------------------------------------------------------------------------------
# the MMN non-monotone problem (slow)
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mmn_nonmonotone_limits_classified():
    """The finding of examples/steady_mmn_certificate.py on 200 cells (about 2 s).
    Measured there: kappa = 0.1 gives risk gap 7.318 and certificate 9.71; kappa = 0.4 at
    t = 2e4 gives risk gap 5.61e-4 and certificate 0.0110 (the 4.0% trapped at w = 0).
    The minimum with that mass fixed is 3.1e-6 below the kappa = 0.4 risk. The global
    minimum is 0.0043404."""
    from pathlib import Path

    from ddsolve.app.config import build, load_config

    toml = Path(__file__).parents[2] / "examples" / "mmn_nonmonotone.toml"
    out = {}
    for kappa in (0.1, 0.4):
        setup = build(load_config(toml, ["grid.cells=200", f"model.kappa={kappa}"]))
        gm = GridModel(setup.model, setup.coords)
        res = relax_to_stationarity(gm, setup.initial.values, t_max=2e4,
                                    dissipation_tol=1e-12, change_tol=1e-9, chunk=0.5,
                                    growth=1.25, evolve_options={"dt": 0.25})
        out[kappa] = (gm, res, classify(gm, res.rho))
    gm, res01, c01 = out[0.1]
    qp = c01.minimum_result
    assert qp.convex and qp.gap <= 1e-12 and 0.00433 < qp.risk < 0.00435
    assert res01.converged and not c01.is_global
    assert 7.2 < c01.risk_gap < 7.4 and c01.certificate_gap > 9.0
    gm, res04, c04 = out[0.4]
    assert not c04.is_global and 4e-4 < c04.risk_gap < 8e-4 and c04.certificate_gap > 5e-3
    assert c04.risk_gap < 1e-3 * c01.risk_gap
    # the kappa = 0.4 gap is the trapped mass at w = 0, not incomplete relaxation
    r = gm.coords.axes[0].centers
    trapped = np.where(r < 0.05, res04.rho, 0.0)
    assert 0.03 < gm.mass(trapped) < 0.05
    fixed = global_minimum(gm, fixed=trapped)
    assert 0 <= c04.value - fixed.risk < 1e-5
    assert fixed.risk - qp.risk > 5e-4
