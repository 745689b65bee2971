"""Backward Euler + Newton: exact Jacobian, mass, first order in time, the discrete
Gibbs steady state, and steps far beyond the explicit diffusion bound."""

import numpy as np
import pytest

from ddsolve import DistributionalDynamicsPDE, GridModel, Model, cartesian, evolve, radial
from ddsolve.laws.exact import gaussian_cell_averages, ou_moments
from ddsolve.model.kernels import GaussianKernel, QuadraticKernel
from ddsolve.model.potentials import DoubleWellPotential, ExpressionPotential, QuadraticPotential
from tests.ddsolve.sparse_reference import ImplicitFVOperator, UpwindOperator, log_mean
from tests.helpers import observed_orders


def _ou(M=200, theta=0.0, method="auto"):
    c = cartesian([-6, 6], M)
    U = QuadraticKernel(theta) if theta else None
    return GridModel(Model(potential=QuadraticPotential(1.0), interaction=U, beta=1.0), c,
                     interaction=method)


@pytest.mark.parametrize("flux", ["upwind", "logmean", "sg"])
@pytest.mark.parametrize("case", ["local-1d", "dense-1d", "fft-2d", "radial"])
def test_jacobian_matches_finite_differences(case, flux):
    rng = np.random.default_rng(0)
    if case == "local-1d":
        gm = _ou(60)
    elif case == "dense-1d":
        gm = _ou(60, theta=0.7, method="dense")
    elif case == "fft-2d":
        c = cartesian([[-2, 2], [-2, 2]], [12, 10], periodic=[True, False])
        gm = GridModel(Model(potential=ExpressionPotential("x**2 + y**4", ndim=2),
                             interaction=GaussianKernel(-0.5, 0.6), beta=0.7, ndim=2), c,
                       interaction="fft")
    else:
        gm = GridModel(Model(potential=ExpressionPotential("r**2", names=["r"]), beta=2.0,
                             radial_dim=4), radial(4, 3.0, 40))
    op = ImplicitFVOperator(DistributionalDynamicsPDE(gm, order=1), flux)
    rho = rng.uniform(0.2, 1.5, gm.coords.size)
    rho[::7] *= 1 + 1e-5  # some faces in the series branch of the log mean
    J, nonlocal_mv = op.jacobian_parts(rho, 0.3)
    for _ in range(3):
        v = rng.normal(size=rho.size) * rho
        eps = 1e-6
        fd = (op.rate(rho + eps * v, 0.3) - op.rate(rho - eps * v, 0.3)) / (2 * eps)
        Jv = J @ v + (nonlocal_mv(v) if nonlocal_mv is not None else 0.0)
        assert np.abs(fd - Jv).max() <= 1e-6 * np.abs(fd).max()


def test_upwind_operator_equals_compiled_first_order_rate():
    gm = _ou(50, theta=0.4, method="dense")
    rho = gaussian_cell_averages(gm.coords.axes[0].edges, 0.5, 0.7)
    eq = DistributionalDynamicsPDE(gm, order=1)
    np.testing.assert_allclose(UpwindOperator(eq).rate(rho, 0.0), eq.rate_data(rho)[0],
                               rtol=0, atol=1e-12 * np.abs(eq.rate_data(rho)[0]).max())


def test_first_order_in_time_and_mass():
    """Errors against a fine-dt reference on the same grid halve with dt; mass exact."""
    gm = _ou(100, theta=0.5, method="dense")
    rho0 = gaussian_cell_averages(gm.coords.axes[0].edges, 1.0, 0.5)
    ref, _ = evolve(gm, rho0, 1.0, implicit=True, dt=1e-3)
    dts, errs = [0.1, 0.05, 0.025], []
    for dt in dts:
        rho, info = evolve(gm, rho0, 1.0, implicit=True, dt=dt)
        assert abs(gm.mass(rho) - 1.0) < 1e-13
        assert rho.min() > 0
        errs.append(np.sum(np.abs(rho - ref)) * gm.coords.cell_volume)
    orders = observed_orders(dts, errs)
    assert np.all((orders > 0.9) & (orders < 1.2)), (errs, orders)


def test_large_steps_reach_discrete_gibbs_state():
    """dt = 1 is ~2000x the explicit diffusion bound on this grid; 200 steps reach the
    discrete Gibbs state of the double well to Newton tolerance."""
    c = cartesian([-2.5, 2.5], 100)
    gm = GridModel(Model(potential=DoubleWellPotential(), beta=2.0), c)
    x = c.cell_centers()[..., 0]
    rho0 = np.exp(-4 * (x - 1.5) ** 2)
    rho, info = evolve(gm, rho0 / gm.mass(rho0), 200.0, implicit=True, dt=1.0)
    assert info["steps"] == 200
    assert info["newton_iterations"] <= 6 * info["steps"]
    assert np.abs(rho - gm.gibbs()).max() < 1e-9


def test_implicit_agrees_with_exact_ou_at_first_order_in_space():
    """The implicit solver's spatial scheme is first-order upwind: the error against the
    exact Gaussian at small dt halves with h."""
    errs, hs = [], []
    for M in (100, 200, 400):
        gm = _ou(M)
        e = gm.coords.axes[0].edges
        rho, _ = evolve(gm, gaussian_cell_averages(e, 1.0, 0.5), 0.5, implicit=True, dt=2e-3)
        m, S = ou_moments(1.0, [1.0], [[0.25]], 0.5, 1.0)
        errs.append(np.sum(np.abs(rho - gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0])))) * 12 / M)
        hs.append(12 / M)
    assert np.all(observed_orders(hs, errs) > 0.85), errs


def test_log_mean_and_its_derivatives():
    rng = np.random.default_rng(5)
    a = rng.uniform(1e-3, 2, 200)
    b = np.concatenate([rng.uniform(1e-3, 2, 100), a[100:] * (1 + rng.uniform(-1e-4, 1e-4, 100))])
    lam, da, db = log_mean(a, b)
    exact = np.where(np.isclose(a, b, rtol=1e-14), a, (b - a) / (np.log(b) - np.log(a)))
    np.testing.assert_allclose(lam, exact, rtol=1e-10)
    eps = 1e-7 * a
    np.testing.assert_allclose(da, (log_mean(a + eps, b)[0] - log_mean(a - eps, b)[0]) / (2 * eps),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, (log_mean(a, b + eps)[0] - log_mean(a, b - eps)[0]) / (2 * eps),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("flux", ["logmean", "sg"])
def test_second_order_fluxes_in_space(flux):
    """Log-mean / Scharfetter-Gummel flux + BDF2 with a small step: L1 error vs the exact
    OU Gaussian at order 2."""
    errs, hs = [], []
    m, S = ou_moments(1.0, [1.0], [[0.25]], 0.5, 1.0)
    for M in (50, 100, 200):
        gm = _ou(M)
        e = gm.coords.axes[0].edges
        rho, _ = evolve(gm, gaussian_cell_averages(e, 1.0, 0.5), 0.5, implicit=True, dt=2e-3,
                        time_order=2, flux=flux)
        errs.append(np.sum(np.abs(rho - gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0])))) * 12 / M)
        hs.append(12 / M)
    orders = observed_orders(hs, errs)
    assert np.all(orders >= 1.9) and np.all(orders < 2.2), (errs, orders)


def test_bdf2_second_order_in_time_with_interaction():
    """BDF2 (log-mean flux, dense Curie-Weiss interaction) against a fine-step reference:
    order 2 in time; backward Euler order 1; mass exact."""
    gm = _ou(80, theta=0.5, method="dense")
    rho0 = gaussian_cell_averages(gm.coords.axes[0].edges, 1.0, 0.5)
    dts = [0.1, 0.05, 0.025]
    for time_order in (1, 2):
        ref, _ = evolve(gm, rho0, 1.0, implicit=True, dt=2e-4, time_order=2, flux="logmean")
        errs = []
        for dt in dts:
            rho, info = evolve(gm, rho0, 1.0, implicit=True, dt=dt, time_order=time_order,
                               flux="logmean")
            assert abs(gm.mass(rho) - 1.0) < 1e-13
            errs.append(np.sum(np.abs(rho - ref)) * gm.coords.cell_volume)
        orders = observed_orders(dts, errs)
        assert np.all(np.abs(orders - time_order) < 0.2), (time_order, errs, orders)


@pytest.mark.parametrize("flux", ["logmean", "sg"])
def test_gibbs_state_stationary_and_free_energy_decays(flux):
    c = cartesian([-2.5, 2.5], 100)
    gm = GridModel(Model(potential=DoubleWellPotential(), interaction=GaussianKernel(-0.3, 0.5),
                         beta=2.0), c, interaction="dense")
    op = ImplicitFVOperator(DistributionalDynamicsPDE(gm, order=1), flux)
    g = gm.gibbs()
    # the Gibbs state of V alone is not stationary with interaction; check with U = 0
    gm0 = GridModel(Model(potential=DoubleWellPotential(), beta=2.0), c)
    op0 = ImplicitFVOperator(DistributionalDynamicsPDE(gm0, order=1), flux)
    assert np.abs(op0.rate(gm0.gibbs().ravel(), 0.0)).max() < 1e-12 * g.max()
    x = c.cell_centers()[..., 0]
    rho = np.exp(-4 * (x - 1.2) ** 2)
    rho /= gm.mass(rho)
    rate = op.rate(rho, 0.0)
    dFdt = float(np.sum(gm.chemical_potential(rho) * rate) * c.cell_volume)
    assert dFdt < 0
    # backward Euler (with the interaction: the Newton path): free energy decreases step by step
    F = [gm.free_energy(rho)]
    for _ in range(10):
        rho, _ = evolve(gm, rho, 0.5, implicit=True, dt=0.5, flux=flux)
        F.append(gm.free_energy(rho))
    assert np.all(np.diff(F) < 0), F
