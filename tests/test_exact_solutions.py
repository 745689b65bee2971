"""The finite-volume scheme against exact solutions (derivations in ddsolve.exact).

Every case measures the L1 error of cell averages on three grids and asserts an observed
order >= 1.9 (second-order scheme) plus an absolute error bound on the finest grid.
"""

import numpy as np
import pytest

from ddsolve import GridModel, Model, cartesian, evolve, radial, with_charge
from ddsolve.exact import (
    chi_cell_averages,
    curie_weiss_moments,
    gaussian_2d_cell_averages,
    gaussian_cell_averages,
    ou_moments,
    radial_ou_scale,
)
from ddsolve.kernels import QuadraticKernel
from ddsolve.potentials import ExpressionPotential, QuadraticPotential
from helpers import l1, observed_orders


def _ou_1d_error(M, T=1.0, beta=1.0):
    c = cartesian([-6, 6], M)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=beta), c)
    rho0 = gaussian_cell_averages(e, 1.0, 0.5)
    rho, _ = evolve(gm, rho0, T)
    m, S = ou_moments(1.0, [1.0], [[0.25]], T, beta)
    return l1(c, rho, gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0])))


def test_ou_1d_gaussian_second_order():
    Ms = [50, 100, 200]
    errs = [_ou_1d_error(M) for M in Ms]
    orders = observed_orders(12.0 / np.array(Ms), errs)
    assert np.all(orders >= 1.9), (errs, orders)
    assert errs[-1] < 4e-4


def test_ou_2d_nondiagonal_gaussian():
    """V = x^T A x / 2 with A non-diagonal: exact Gaussian with rotating covariance."""
    A = np.array([[1.0, 0.6], [0.6, 2.0]])
    m0, S0 = np.array([1.0, -0.5]), np.array([[0.3, 0.05], [0.05, 0.2]])
    T, beta = 0.5, 2.0
    errs, hs = [], []
    for M in (40, 80, 160):
        c = cartesian([[-4, 4], [-4, 4]], [M, M])
        gm = GridModel(Model(potential=QuadraticPotential(A), beta=beta, ndim=2), c)
        rho0 = gaussian_2d_cell_averages(c, m0, S0)
        rho, _ = evolve(gm, rho0, T)
        m, S = ou_moments(A, m0, S0, T, beta)
        errs.append(l1(c, rho, gaussian_2d_cell_averages(c, m, S)))
        hs.append(8.0 / M)
    orders = observed_orders(hs, errs)
    assert np.all(orders >= 1.9), (errs, orders)
    assert errs[-1] < 2e-3


@pytest.mark.parametrize("d", [3, 10])
def test_radial_ou_chi_law(d):
    """Radial OU in R^d: |theta_t| is s_t chi_d; m(r) = r^(d-1) enters the entropy."""
    s0, T, R = 0.5, 1.0, 7.0
    errs, hs = [], []
    for M in (80, 160, 320):
        c = radial(d, R, M)
        pot = ExpressionPotential("r**2/2", names=["r"])
        gm = GridModel(Model(potential=pot, beta=1.0, radial_dim=d), c)
        e = c.axes[0].edges
        rho, _ = evolve(gm, chi_cell_averages(e, d, s0), T)
        errs.append(l1(c, rho, chi_cell_averages(e, d, radial_ou_scale(s0, T))))
        hs.append(R / M)
        assert abs(gm.mass(rho) - 1) < 1e-12
    orders = observed_orders(hs, errs)
    assert np.all(orders >= 1.9), (errs, orders)
    assert errs[-1] < 1e-4


def test_radial_d320_runs_and_relaxes_to_gibbs():
    """d = 320: logs keep r^(d-1) finite; the law relaxes to s_inf chi_d."""
    d, c = 320, radial(320, 30.0, 400)
    gm = GridModel(Model(potential=ExpressionPotential("r**2/2", names=["r"]), beta=1.0,
                         radial_dim=d), c)
    e = c.axes[0].edges
    rho0 = chi_cell_averages(e, d, 0.5)
    assert abs(gm.mass(rho0) - 1) < 1e-12
    rho, _ = evolve(gm, rho0, 1.0)
    exact = chi_cell_averages(e, d, radial_ou_scale(0.5, 1.0))
    assert np.all(np.isfinite(rho)) and rho.min() >= 0
    assert abs(gm.mass(rho) - 1) < 1e-12
    assert l1(c, rho, exact) < 1e-2
    mean_exact = np.sum(exact * c.axes[0].centers) * c.axes[0].spacing
    assert abs(gm.moments(rho)["mean_r"] - mean_exact) < 1e-3 * mean_exact


def test_curie_weiss_moments_any_initial_law():
    """Quadratic Curie-Weiss from a non-Gaussian (two-bump, skewed) law: the mean and
    variance follow closed ODEs whatever the law (ddsolve.exact). The variance error
    converges at second order; the mean (exactly transported by the ODE m' = -a m) is
    checked against an absolute bound."""
    a, theta, beta, T = 1.0, 2.0, 2.0, 0.5
    w, mus, sds = np.array([0.7, 0.3]), np.array([-1.0, 1.5]), np.array([0.4, 0.3])
    m0 = float(w @ mus)
    v0 = float(w @ (sds**2 + mus**2)) - m0**2
    m_ex, v_ex = curie_weiss_moments(m0, v0, T, a, theta, beta)
    var_errs, mean_errs, hs = [], [], []
    for M in (120, 240, 480):
        c = cartesian([-6, 6], M)
        e = c.axes[0].edges
        gm = GridModel(Model(potential=QuadraticPotential(a), interaction=QuadraticKernel(theta),
                             beta=beta), c)
        rho0 = sum(wk * gaussian_cell_averages(e, mk, sk) for wk, mk, sk in zip(w, mus, sds))
        rho, _ = evolve(gm, rho0, T)
        mom = gm.moments(rho)
        mean_errs.append(abs(mom["mean_x"] - m_ex))
        var_errs.append(abs(mom["m2_x"] - mom["mean_x"] ** 2 - v_ex))
        hs.append(12.0 / M)
    orders = observed_orders(hs, var_errs)
    assert np.all(orders >= 1.9), (var_errs, orders)
    assert var_errs[-1] < 1e-4
    assert mean_errs[-1] < 5e-5, mean_errs


def test_charge_axis_product_gaussian():
    """(x, c) product with V = x^2/2 + 2c^2 decouples: a product of two OU solutions."""
    base = cartesian([-5, 5], 64)
    c = with_charge(base, (-3, 3), 64)
    A = np.diag([1.0, 4.0])
    gm = GridModel(Model(potential=QuadraticPotential(A), beta=1.0, ndim=2), c)
    m0, S0 = np.array([0.5, 1.0]), np.diag([0.2, 0.1])
    rho, _ = evolve(gm, gaussian_2d_cell_averages(c, m0, S0), 0.5)
    m, S = ou_moments(A, m0, S0, 0.5, 1.0)
    assert l1(c, rho, gaussian_2d_cell_averages(c, m, S)) < 5e-3
    assert c.names == ("x", "c")


def test_radial_with_charge_axis():
    """(r, c) on R^3 x R: the r-marginal follows the chi law, the c-marginal OU."""
    d = 3
    c = with_charge(radial(d, 6.0, 96), (-4, 4), 64)
    pot = ExpressionPotential("x**2/2 + y**2/2", ndim=2)
    gm = GridModel(Model(potential=pot, beta=1.0, ndim=2, radial_dim=d), c)
    er, ec = c.axes[0].edges, c.axes[1].edges
    rho0 = np.outer(chi_cell_averages(er, d, 0.5), gaussian_cell_averages(ec, 1.0, 0.5))
    rho, _ = evolve(gm, rho0, 0.5)
    hr, hc = c.spacing
    r_marg, c_marg = rho.sum(axis=1) * hc, rho.sum(axis=0) * hr
    m, S = ou_moments(1.0, [1.0], [[0.25]], 0.5, 1.0)
    assert np.sum(np.abs(r_marg - chi_cell_averages(er, d, radial_ou_scale(0.5, 0.5)))) * hr < 2e-3
    assert np.sum(np.abs(c_marg - gaussian_cell_averages(ec, m[0], np.sqrt(S[0, 0])))) * hc < 2e-3
