"""Structural properties of the finite-volume scheme (Carrillo-Chertock-Huang 2015):
mass to round-off, positivity under the CFL bound, free-energy decay, exact discrete
steady states, second-order self-convergence on a nonlinear nonlocal problem, and
agreement with py-pde's own solvers through ``make_evolution_rate``."""

import math

import numpy as np
import pde
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddsolve import DistributionalDynamicsPDE, GridModel, Model, cartesian, evolve, radial
from ddsolve.laws.exact import gaussian_cell_averages, ou_moments
from ddsolve.model.kernels import AttractiveRepulsiveKernel, CosineKernel, GaussianKernel, QuadraticKernel
from ddsolve.model.potentials import DoubleWellPotential, ExpressionPotential, QuadraticPotential
from ddsolve.model.schedule import Schedule
from ddsolve.schemes.fv.kernels import SSP_TABLES, as_2d, make_workspace, rk_step
from tests.helpers import observed_orders


def _curie_weiss_dw(M, beta=5.0, method="dense"):
    c = cartesian([-2.5, 2.5], M)
    model = Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(0.5), beta=beta)
    return GridModel(model, c, interaction=method)


class FreeEnergyRecorder:
    """py-pde callback collecting (t, F, mass, min) at every interrupt."""

    def __init__(self, gm):
        self.gm, self.rows = gm, []

    def __call__(self, state, t):
        self.rows.append((t, self.gm.free_energy(state.data), self.gm.mass(state.data),
                          float(state.data.min())))


def _record(gm, rho0, T, interval, **kw):
    rec = FreeEnergyRecorder(gm)
    tracker = pde.CallbackTracker(rec, interrupts=interval)
    rho, info = evolve(gm, rho0, T, tracker=tracker, **kw)
    return rho, np.array(rec.rows), info


# --- mass ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["nonlocal-1d", "periodic-2d", "radial", "aggregation-fft"])
def test_mass_conserved_to_roundoff(case):
    if case == "nonlocal-1d":
        gm = _curie_weiss_dw(200)
        x = gm.coords.cell_centers()[..., 0]
        rho0 = np.exp(-(x - 0.3) ** 2)
    elif case == "periodic-2d":
        c = cartesian([[0, 2 * np.pi], [0, 2 * np.pi]], [48, 40], periodic=True)
        gm = GridModel(Model(interaction=CosineKernel(1.5), beta=2.0, ndim=2), c)
        x = c.cell_centers()
        rho0 = 1 + 0.5 * np.cos(x[..., 0]) * np.sin(x[..., 1])
    elif case == "radial":
        c = radial(5, 6.0, 150)
        gm = GridModel(Model(potential=ExpressionPotential("r**4/4 - r**2", names=["r"]),
                             beta=3.0, radial_dim=5), c)
        r = c.cell_centers()[..., 0]
        rho0 = r**4 * np.exp(-(r**2))
    else:
        c = cartesian([-3, 3], 512)
        gm = GridModel(Model(interaction=AttractiveRepulsiveKernel()), c, interaction="fft")
        x = c.cell_centers()[..., 0]
        rho0 = np.exp(-(x**2))
    rho0 = rho0 / gm.mass(rho0)
    rho, info = evolve(gm, rho0, 2.0)
    assert info["steps"] > 100
    # round-off: a few ulps per step at most
    assert abs(gm.mass(rho) - 1.0) < 1e-15 * info["steps"] * max(rho.size, 100) ** 0.5 + 1e-14


# --- positivity ------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.floats(0, 10), min_size=16, max_size=16),
    zeros=st.lists(st.integers(0, 15), max_size=8),
    a=st.floats(-3, 3), b=st.floats(-3, 3),
    beta=st.sampled_from([math.inf, 0.5, 5.0]),
    rk=st.sampled_from([1, 2, 3]),
)
def test_one_step_positive_under_cfl(data, zeros, a, b, beta, rk):
    """Any non-negative data (with exact zeros), any potential: one adaptive SSP step
    leaves the density non-negative and conserves mass."""
    c = cartesian([-2, 2], 16)
    pot = ExpressionPotential(f"{a}*x**3 + {b}*x**2")
    gm = GridModel(Model(potential=pot, interaction=GaussianKernel(-1.0, 0.7), beta=beta), c)
    rho = np.array(data)
    rho[list(zeros)] = 0.0
    if rho.sum() == 0:
        rho[3] = 1.0
    eq = DistributionalDynamicsPDE(gm)
    work = make_workspace(eq.shape2d, False)
    r2 = as_2d(rho.copy())
    m0 = r2.sum()
    status, dt, limited = rk_step(r2, 0.0, 1.0, SSP_TABLES[rk], eq.inter, eq.V2, eq.log_m2,
                                  eq.temperature, eq.sched, eq.geom, eq.scheme_tuple(0.9, 0.0), work)
    assert status == 0 and dt > 0
    assert r2.min() >= -1e-14 * r2.max()
    assert abs(r2.sum() - m0) <= 1e-12 * m0


def test_limiter_inactive_away_from_vacuum():
    """With a positive density and the CFL bound the positivity limiter never acts: the
    scheme is exactly Carrillo-Chertock-Huang."""
    gm = _curie_weiss_dw(200)
    x = gm.coords.cell_centers()[..., 0]
    rho0 = np.exp(-(x**2))
    _, info = evolve(gm, rho0 / gm.mass(rho0), 1.0)
    assert info["limited_cells"] == 0


def test_positivity_compact_support_aggregation():
    """beta = inf, compactly supported data with vacuum: density stays >= 0 throughout."""
    c = cartesian([-3, 3], 300)
    gm = GridModel(Model(interaction=AttractiveRepulsiveKernel()), c, interaction="dense")
    x = c.cell_centers()[..., 0]
    rho0 = np.where(np.abs(x) < 1.5, 1 + 0.5 * np.sin(5 * x), 0.0)
    rho0 /= gm.mass(rho0)
    _, rows, _ = _record(gm, rho0, 3.0, 0.05)
    assert rows[:, 3].min() >= 0.0


# --- free energy -------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["curie-weiss-diffusive", "aggregation", "kuramoto", "radial"])
def test_free_energy_non_increasing(case):
    if case == "curie-weiss-diffusive":
        gm = _curie_weiss_dw(160, beta=3.0)
        x = gm.coords.cell_centers()[..., 0]
        rho0 = np.exp(-4 * (x - 0.8) ** 2) + 0.5 * np.exp(-4 * (x + 1) ** 2)
    elif case == "aggregation":
        c = cartesian([-3, 3], 300)
        gm = GridModel(Model(interaction=AttractiveRepulsiveKernel()), c)
        x = c.cell_centers()[..., 0]
        rho0 = np.exp(-2 * x**2) * (1 + 0.3 * np.cos(3 * x))
    elif case == "kuramoto":
        c = cartesian([0, 2 * np.pi], 128, periodic=True)
        gm = GridModel(Model(interaction=CosineKernel(3.0), beta=1.0), c)
        x = c.cell_centers()[..., 0]
        rho0 = 1 + 0.2 * np.cos(x) + 0.1 * np.sin(3 * x)
    else:
        c = radial(10, 6.0, 120)
        gm = GridModel(Model(potential=ExpressionPotential("(r**2 - 4)**2/8", names=["r"]),
                             beta=2.0, radial_dim=10), c)
        r = c.cell_centers()[..., 0]
        rho0 = r**9 * np.exp(-(r**2))
    rho0 = rho0 / gm.mass(rho0)
    _, rows, _ = _record(gm, rho0, 2.0, 0.02)
    F = rows[:, 1]
    assert F[-1] < F[0] - 1e-3 * abs(F[0]) - 1e-6  # something happened
    increments = np.diff(F)
    assert increments.max() <= 1e-12 * np.abs(F).max(), increments.max()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), beta=st.sampled_from([math.inf, 0.3, 4.0]),
       order=st.sampled_from([1, 2]))
def test_semidiscrete_dissipation_identity(seed, beta, order):
    """dF_h/dt = <grad F_h, L(rho)> = -sum_faces u F h <= 0 for random positive states."""
    rng = np.random.default_rng(seed)
    c = cartesian([[-1, 1], [-1, 1]], [12, 10], periodic=[False, True])
    pot = ExpressionPotential(f"{rng.normal()}*x**2 + {rng.normal()}*sin(3.14159*y)", ndim=2)
    gm = GridModel(Model(potential=pot, interaction=GaussianKernel(rng.normal(), 0.5),
                         beta=beta, ndim=2), c, interaction="dense")
    rho = rng.uniform(0.1, 2.0, size=c.shape)
    eq = DistributionalDynamicsPDE(gm, order=order)
    rate, _ = eq.rate_data(rho)
    grad = gm.chemical_potential(rho) * c.cell_volume  # dF_h/drho (+ T * vol, mass-neutral)
    dFdt = float(np.sum(grad * rate))
    assert abs(np.sum(rate)) < 1e-12 * np.abs(rate).max() * rate.size
    assert dFdt <= 1e-12 * np.abs(grad).max() * np.abs(rate).sum()
    # finite-difference derivative of F_h along the rate agrees
    eps = 1e-6
    fd = (gm.free_energy(rho + eps * rate) - gm.free_energy(rho - eps * rate)) / (2 * eps)
    assert fd == pytest.approx(dFdt, rel=1e-5, abs=1e-10)


# --- steady states --------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2])
def test_discrete_gibbs_state_is_exactly_stationary(order):
    c = cartesian([-2.5, 2.5], 100)
    gm = GridModel(Model(potential=DoubleWellPotential(), beta=2.0), c)
    g = gm.gibbs()
    rate, _ = DistributionalDynamicsPDE(gm, order=order).rate_data(g)
    assert np.abs(rate).max() < 1e-12 * g.max()


def test_linear_fokker_planck_converges_to_discrete_gibbs():
    c = cartesian([-2.5, 2.5], 100)
    gm = GridModel(Model(potential=DoubleWellPotential(), beta=2.0), c)
    x = c.cell_centers()[..., 0]
    rho0 = np.exp(-((x - 1.5) ** 2) * 4)
    rho0 /= gm.mass(rho0)
    rho, _ = evolve(gm, rho0, 80.0)  # Kramers escape between wells is slow at beta = 2
    assert np.abs(rho - gm.gibbs()).max() < 1e-10


# --- accuracy --------------------------------------------------------------------------------
def test_self_convergence_second_order_nonlinear_nonlocal():
    """Double-well Curie-Weiss with diffusion: successive differences of solutions on
    grids M, 2M, 4M, 8M (fine cells averaged to coarse) shrink at order 2. (The kernel is
    applied in its separable form, equal to the dense matrix to round-off — see
    test_interaction — to keep the 800-cell run cheap.)"""
    sols = []
    Ms = (100, 200, 400, 800)
    for M in Ms:
        gm = _curie_weiss_dw(M, beta=5.0, method="separable")
        x = gm.coords.cell_centers()[..., 0]
        e = gm.coords.axes[0].edges
        rho0 = 0.6 * gaussian_cell_averages(e, 0.7, 0.3) + 0.4 * gaussian_cell_averages(e, -0.9, 0.4)
        rho, _ = evolve(gm, rho0 / gm.mass(rho0), 0.5)
        sols.append(rho)
        assert x.size == M
    diffs = []
    for k in range(len(Ms) - 1):
        fine_on_coarse = sols[k + 1].reshape(-1, 2).mean(axis=1)
        diffs.append(np.sum(np.abs(fine_on_coarse - sols[k])) * 5.0 / Ms[k])
    orders = np.log2(np.array(diffs[:-1]) / np.array(diffs[1:]))
    assert np.all(orders >= 1.9), (diffs, orders)


def test_time_change_of_schedule_is_exact():
    """The whole right-hand side scales with xi(t): the solution with schedule xi at time
    t equals the xi = 1 solution at tau(t) = int_0^t xi. Power schedule vs exact OU."""
    xi0, t0, p, T = 2.0, 0.5, 0.7, 1.0
    sched = Schedule.power(xi0, t0, p)
    tau = xi0 * t0 / (1 - p) * ((1 + T / t0) ** (1 - p) - 1)
    c = cartesian([-6, 6], 200)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0, xi=sched), c)
    rho, _ = evolve(gm, gaussian_cell_averages(e, 1.0, 0.5), T)
    m, S = ou_moments(1.0, [1.0], [[0.25]], tau, 1.0)
    err = np.sum(np.abs(rho - gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0])))) * c.cell_volume
    assert err < 5e-4


def test_kuramoto_linear_rate_and_synchronisation():
    """Noisy Kuramoto on [0, 2pi): the uniform state's first mode evolves at rate
    -(1/beta - kappa/2) (linearisation; phase transition at kappa*beta = 2)."""
    c = cartesian([0, 2 * np.pi], 256, periodic=True)
    x = c.cell_centers()[..., 0]
    beta = 1.0
    for kappa in (1.0, 3.0):
        gm = GridModel(Model(interaction=CosineKernel(kappa), beta=beta), c)
        rho0 = (1 + 1e-4 * np.cos(x)) / (2 * np.pi)
        T = 0.5
        rho, _ = evolve(gm, rho0, T)
        amp = 2 * np.sum(rho * np.cos(x)) * c.cell_volume  # coefficient of cos(x)/(2 pi)
        rate = np.log(amp / 1e-4) / T
        assert rate == pytest.approx(-(1 / beta - kappa / 2), rel=2e-3)
    # above threshold the system synchronises to a non-uniform state
    c = cartesian([0, 2 * np.pi], 64, periodic=True)
    x = c.cell_centers()[..., 0]
    gm = GridModel(Model(interaction=CosineKernel(3.0), beta=1.0), c)
    rho, _ = evolve(gm, (1 + 1e-2 * np.cos(x)) / (2 * np.pi), 40.0)
    assert rho.max() > 2.0 * rho.min()


def test_aggregation_compact_steady_state():
    """W = |z|^2/2 - |z| in 1D: the steady state is the uniform density 1/2 on an
    interval of length 2 (Carrillo-Chertock-Huang 2015, Example 4)."""
    M = 240
    c = cartesian([-2, 2], M)
    gm = GridModel(Model(interaction=AttractiveRepulsiveKernel()), c, interaction="dense")
    x = c.cell_centers()[..., 0]
    rho0 = np.exp(-4 * x**2)
    rho, _ = evolve(gm, rho0 / gm.mass(rho0), 30.0)
    h = 4.0 / M
    support = x[rho > 1e-3]
    assert abs((support.max() - support.min() + h) - 2.0) <= 2 * h
    interior = np.abs(x - gm.moments(rho)["mean_x"]) < 0.8
    assert np.abs(rho[interior] - 0.5).max() < 0.02


# --- py-pde integration -------------------------------------------------------------------------
def test_pypde_solver_through_make_evolution_rate():
    """py-pde's own explicit solver on the compiled rate agrees with ddsolve's stepper."""
    c = cartesian([-4, 4], 64)
    gm = GridModel(Model(potential=QuadraticPotential(1.0), interaction=QuadraticKernel(0.5),
                         beta=2.0), c)
    e = c.axes[0].edges
    rho0 = gaussian_cell_averages(e, 0.5, 0.5)
    eq = DistributionalDynamicsPDE(gm)
    state = c.field(rho0)
    np.testing.assert_allclose(eq.evolution_rate(state).data, eq.rate_data(rho0)[0], atol=1e-13)
    ref, _ = evolve(gm, rho0, 0.5, rk_order=3, cfl=0.5)
    out = eq.solve(state, t_range=0.5, dt=1e-4, solver="euler", backend="numba", tracker=None)
    assert np.abs(out.data - ref).max() < 1e-5


@pytest.mark.parametrize("rk_order", [1, 2, 3])
def test_ssp_rk_temporal_order(rk_order):
    """With the step capped below the CFL bound, SSP-RK1/2/3 converge in time at their
    order (first-order space, smooth nonlocal transport, fine-dt reference)."""
    c = cartesian([-3, 3], 60)
    gm = GridModel(Model(potential=ExpressionPotential("x**2/2"),
                         interaction=GaussianKernel(-1.0, 0.8)), c, interaction="dense")
    x = c.cell_centers()[..., 0]
    rho0 = np.exp(-((x - 0.5) ** 2))
    rho0 /= gm.mass(rho0)
    ref, _ = evolve(gm, rho0, 1.0, order=1, rk_order=rk_order, dt=2e-5)
    dts = [0.01, 0.005, 0.0025]
    errs = [np.sum(np.abs(evolve(gm, rho0, 1.0, order=1, rk_order=rk_order, dt=dt)[0] - ref))
            for dt in dts]
    orders = observed_orders(dts, errs)
    assert np.all(np.abs(orders - rk_order) < 0.25), (errs, orders)


@pytest.mark.parametrize("bad, match", [(np.ones(49), "shape"), (np.full(50, np.nan), "non-finite"),
                                        (-np.ones(50), "negative"), (np.zeros(50), "zero mass")])
def test_evolve_rejects_bad_initial_data(bad, match):
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0), cartesian([-3, 3], 50))
    with pytest.raises(ValueError, match=f"rho0.*{match}|{match}"):
        evolve(gm, bad, 0.1)
    with pytest.raises(ValueError, match="t_final"):
        evolve(gm, np.ones(50), -1.0)


@pytest.mark.parametrize("grid", ["1d", "2d-periodic"])
def test_fft_dense_separable_paths_give_the_same_evolution(grid):
    """The compiled stepper with each interaction representation: identical solutions."""
    if grid == "1d":
        c = cartesian([-3, 3], 120)
        kernels = {"dense": GaussianKernel(-1.0, 0.6), "fft": GaussianKernel(-1.0, 0.6)}
        x = c.cell_centers()[..., 0]
        rho0 = np.exp(-((x - 0.4) ** 2)) + 0.3
    else:
        c = cartesian([[0, 2 * np.pi], [0, 2 * np.pi]], [24, 20], periodic=True)
        k = CosineKernel(1.5)
        kernels = {"dense": k, "fft": k, "separable": k}
        x = c.cell_centers()
        rho0 = 1 + 0.4 * np.cos(x[..., 0] - 0.3) * np.cos(x[..., 1])
    out = {}
    for method, ker in kernels.items():
        gm = GridModel(Model(interaction=ker, beta=2.0, ndim=c.ndim), c, interaction=method)
        out[method], _ = evolve(gm, rho0 / gm.mass(rho0), 1.0, dt=1e-3)
    for method in out:
        np.testing.assert_allclose(out[method], out["dense"], rtol=0, atol=1e-11)


def test_2d_aggregation_fft_positive_dissipative():
    """2D attractive Gaussian interaction without diffusion (FFT path, vacuum regions):
    positivity, mass to round-off and monotone free energy."""
    c = cartesian([[-3, 3], [-3, 3]], [48, 48])
    gm = GridModel(Model(interaction=GaussianKernel(-1.0, 1.0), ndim=2), c, interaction="fft")
    x = c.cell_centers()
    rho0 = np.where(np.hypot(x[..., 0], x[..., 1] - 0.5) < 1.5, 1.0, 0.0)
    rho0 /= gm.mass(rho0)
    rho, rows, _ = _record(gm, rho0, 2.0, 0.1)
    assert rows[:, 3].min() >= 0.0
    assert np.abs(rows[:, 2] - 1).max() < 1e-12
    assert np.diff(rows[:, 1]).max() <= 1e-12 * abs(rows[0, 1])
    assert rows[-1, 1] < rows[0, 1] - 0.01
