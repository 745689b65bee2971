"""The finite-volume scheme against exact solutions (derivations in ddsolve.laws.exact).

The convergence cases live in :mod:`validation.convergence` (``python -m
validation.convergence`` prints their table); each is run on three grids here with an
observed order >= 1.9 and an absolute error bound on the finest grid.
"""

import numpy as np
import pytest

from ddsolve import GridModel, Model, cartesian, evolve, radial, with_charge
from ddsolve.laws.exact import (
    chi_cell_averages,
    curie_weiss_moments,
    gaussian_2d_cell_averages,
    gaussian_cell_averages,
    ou_moments,
    radial_ou_scale,
)
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.model.potentials import ExpressionPotential, QuadraticPotential
from validation.convergence import CASES, grid_study
from validation.convergence import l1_distance as l1


@pytest.mark.parametrize("key", list(CASES))
def test_second_order_against_exact_solution(key):
    """Observed order >= 1.9 over three grids and an absolute bound on the finest."""
    case = CASES[key]
    res = grid_study(case.name, case.run, case.cells)
    assert np.all(res.orders >= case.min_order), (res.errors, res.orders)
    assert res.errors[-1] < case.max_error, res.errors


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


def test_curie_weiss_mean_follows_ode():
    """The mean of quadratic Curie-Weiss obeys m' = -a m for any law (variance: CASES)."""
    a, theta, beta, T = 1.0, 2.0, 2.0, 0.5
    c = cartesian([-6, 6], 480)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(a), interaction=QuadraticKernel(theta),
                         beta=beta), c)
    rho0 = 0.7 * gaussian_cell_averages(e, -1.0, 0.4) + 0.3 * gaussian_cell_averages(e, 1.5, 0.3)
    rho, _ = evolve(gm, rho0, T)
    m_ex, _ = curie_weiss_moments(0.7 * -1.0 + 0.3 * 1.5, 1.0, T, a, theta, beta)
    assert abs(gm.moments(rho)["mean_x"] - m_ex) < 5e-5


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
