"""The Lagrangian (quantile) JKO step: exact solutions, orders in time, the JKO inequality
at every step for large steps, mass, positivity, and agreement with the FV scheme."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddsolve.app.config import build, resolve
from ddsolve.grid.grid_model import GridModel
from ddsolve.laws.exact import chi_mean, gaussian_cell_averages, radial_ou_scale
from ddsolve.model.schedule import Schedule
from ddsolve.schemes.evolve import evolve
from ddsolve.schemes.jko.lagrangian import LagrangianJKO
from ddsolve.schemes.jko.solver import JKOSolver

OU = {"model": {"problem": "fokker-planck", "potential": "quadratic", "stiffness": 1.0, "beta": 1.0},
      "grid": {"bounds": [-6.0, 6.0], "cells": 200},
      "initial": {"kind": "gaussian", "mean": 1.0, "std": 0.5}}
CURIE_WEISS = {"model": {"problem": "curie-weiss", "potential": "double-well", "theta": 1.0, "beta": 3.0},
               "grid": {"bounds": [-3.0, 3.0], "cells": 300},
               "initial": {"kind": "gaussian", "mean": 0.1, "std": 0.5}}
AGGREGATION = {"model": {"problem": "aggregation", "interaction": "attractive-repulsive", "a": 2.0, "b": 1.0},
               "grid": {"bounds": [-4.0, 4.0], "cells": 400},
               "initial": {"kind": "gaussian", "mean": 0.0, "std": 1.0}}


def _setup(config, **changes):
    cfg = {k: dict(v) for k, v in config.items()}
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    setup = build(resolve(cfg, solver=False), solver=False)
    return GridModel(setup.model, setup.coords), setup.initial.values


def _march(method, y, tau, steps, order=1):
    prev = None
    for _ in range(steps):
        new, info = method.step(y, tau, prev if order == 2 else None)
        assert new is not None, info
        prev = (y, tau)
        y = new
    return y


# --------------------------------------------------------------------------- exact solutions
def test_aggregation_matches_the_exact_jko_recursion_to_round_off():
    r"""W = |z|^2/2 - |z| without diffusion. For a monotone quantile function,
    :math:`\int\operatorname{sign}(X(s)-X(s'))ds' = 2s-1`, so the flow is
    :math:`\partial_tX = -(X-\bar x) + (2s-1)` and the JKO step is exactly
    :math:`X^{n+1} = (X^n + \tau(\bar x + 2s - 1))/(1+\tau)`. At the atoms' mass levels
    the discrete step has the same sign sums (for any masses), so the scheme reproduces
    the recursion to round-off; its time error against the exact flow is first order
    (second with BDF2)."""
    gm, rho0 = _setup(AGGREGATION)
    for masses in ("graded", "uniform"):
        method = LagrangianJKO(gm, atoms=150, masses=masses, inner_tol=1e-15)
        y = method.initial_state(rho0)
        s, xbar = method.levels, float(method.masses @ y)
        tau = 0.25
        for _ in range(40):
            F0 = method.free_energy(y)
            new, info = method.step(y, tau)
            expected = (y + tau * (xbar + 2 * s - 1)) / (1 + tau)
            assert np.max(np.abs(new - expected)) < 1e-12 * np.max(np.abs(expected))
            assert method.free_energy(new) + method.distance2(new, y) / (2 * tau) <= F0 + 1e-14
            y = new
        # 10 time units: the uniform density on [xbar - 1, xbar + 1] up to e^-10
        assert np.max(np.abs(y - (xbar + 2 * s - 1))) < 3 * math.exp(-10) * 4

    method = LagrangianJKO(gm, atoms=150)
    y0 = method.initial_state(rho0)
    s, xbar, T = method.levels, float(method.masses @ y0), 2.0
    exact = xbar + (y0 - xbar) * math.exp(-T) + (2 * s - 1) * (1 - math.exp(-T))
    for order, expected in ((1, 1.0), (2, 2.0)):
        errs = [np.max(np.abs(_march(method, y0, T / n, n, order) - exact)) for n in (20, 40, 80)]
        observed = np.log2(np.array(errs[:-1]) / errs[1:])
        assert np.all(np.abs(observed - expected) < 0.1), (order, errs)


def test_ou_first_order_jko_and_second_order_bdf2():
    """1D OU from N(1, 1/4): the mean error is first order in tau for JKO and second for
    the variational BDF2; the density converges to the exact cell averages."""
    gm, rho0 = _setup(OU, grid__cells=400)
    T = 0.5
    mean = math.exp(-T)
    std = math.sqrt(1 - math.exp(-2 * T) + 0.25 * math.exp(-2 * T))
    exact = gaussian_cell_averages(gm.coords.axes[0].edges, mean, std)
    method = LagrangianJKO(gm, atoms=800)
    y0 = method.initial_state(rho0)
    h = gm.coords.cell_volume
    for order, expected in ((1, 1.0), (2, 2.0)):
        errs, l1 = [], []
        for n in (10, 20, 40, 80):
            y = _march(method, y0, T / n, n, order)
            errs.append(abs(float(method.masses @ y) - mean))
            l1.append(float(np.sum(np.abs(method.density(y) - exact)) * h))
        observed = np.log2(np.array(errs[:-1]) / errs[1:])
        assert np.all(np.abs(observed - expected) < 0.15), (order, errs)
        if order == 2:
            assert l1[-1] < 1e-4  # time and space errors both small
        else:
            assert 0.8 < math.log2(l1[-2] / l1[-1]) < 1.2


def test_radial_ou_in_d_320_from_near_delta_data():
    r"""Radial OU in R^320 from theta ~ N(0, kappa^2/d I) with kappa = 0.4: r is concentrated
    at 0.4 with width ~ 0.016, and r_t = s_t chi_d exactly; the JKO mean radius converges
    to the chi mean at first order in tau, with no diffusion from the grid."""
    cfg = {"model": {"problem": "fokker-planck", "potential": "quadratic", "stiffness": 1.0, "beta": 320.0},
           "grid": {"coordinates": "radial", "dim": 320, "r_max": 2.0, "cells": 500},
           "initial": {"kind": "gaussian", "std": 0.4 / math.sqrt(320)}}
    gm, rho0 = _setup(cfg)
    method = LagrangianJKO(gm, atoms=400)
    y0 = method.initial_state(rho0)
    assert abs(float(method.masses @ y0) - chi_mean(320, 0.4 / math.sqrt(320))) < 1e-5
    T = 1.0
    target = chi_mean(320, radial_ou_scale(0.4 / math.sqrt(320), T, 1.0, 320.0))
    errs = [abs(float(method.masses @ _march(method, y0, T / n, n)) - target) for n in (10, 20, 40)]
    observed = np.log2(np.array(errs[:-1]) / errs[1:])
    assert np.all(np.abs(observed - 1.0) < 0.15), errs
    # BDF2 (started by one JKO step): asymptotically second order
    errs = [abs(float(method.masses @ _march(method, y0, T / n, n, 2)) - target) for n in (40, 80, 160)]
    assert np.all(np.log2(np.array(errs[:-1]) / errs[1:]) > 1.5) and errs[-1] < 4e-6, errs


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("config", [OU, CURIE_WEISS], ids=["ou", "curie-weiss"])
def test_jko_inequality_mass_positivity_at_100x_the_explicit_step(config):
    """tau = 100 h^2 beta / 2: every step satisfies F(y1) + W2^2/(2 tau) <= F(y0), F
    decreases, mass is exact to round-off and the density is non-negative; the atoms stay
    ordered inside the walls."""
    gm, rho0 = _setup(config)
    h = gm.coords.cell_volume
    tau = 100 * h * h / (2 * gm.temperature)
    method = LagrangianJKO(gm)
    y = method.initial_state(rho0)
    mass0 = gm.mass(method.density(y))
    F = method.free_energy(y)
    for _ in range(25):
        new, info = method.step(y, tau)
        assert new is not None, info
        F_new = method.free_energy(new)
        assert F_new + method.distance2(new, y) / (2 * tau) <= F + 1e-12 * abs(F)
        assert F_new < F
        rho = method.density(new)
        assert abs(gm.mass(rho) - mass0) < 1e-13 and rho.min() >= 0
        assert np.all(np.diff(new) > 0) and new[0] > gm.coords.axes[0].lower
        y, F = new, F_new


def test_curie_weiss_agrees_with_the_fine_fv_reference():
    """Curie-Weiss double well at beta = 3 (nonconvex, interacting), t = 2: JKO with BDF2
    against the implicit FV reference on the same grid (both converged in time)."""
    gm, rho0 = _setup(CURIE_WEISS)
    ref, _ = evolve(gm, rho0, 2.0, implicit=True, time_order=2, flux="logmean", dt=0.002)
    solver_rho = {}
    for order in (1, 2):
        method = LagrangianJKO(gm, atoms=600)
        y = _march(method, method.initial_state(rho0), 0.01, 200, order)
        solver_rho[order] = method.density(y)
    h = gm.coords.cell_volume
    l1 = {k: float(np.sum(np.abs(v - ref)) * h) for k, v in solver_rho.items()}
    mean = {k: float(gm.moments(v)["mean_x"]) for k, v in solver_rho.items()}
    mean_ref = float(gm.moments(ref)["mean_x"])
    assert l1[2] < 2e-3 and abs(mean[2] - mean_ref) < 2e-4, (l1, mean, mean_ref)
    assert abs(mean[1] - mean_ref) > abs(mean[2] - mean_ref)  # BE at tau = 0.01 is less accurate


def test_solver_rejects_and_restarts_and_reaches_t_final():
    """A step whose inner solver fails (an iteration cap of 2 at a large tau) is rejected
    and retried at half the step; the run still lands on t_final with the JKO inequality."""
    import pde

    gm, rho0 = _setup(CURIE_WEISS)
    method = LagrangianJKO(gm, max_inner=2)
    solver = JKOSolver(method, Schedule.constant(1.0), dt=0.5)
    final = pde.Controller(solver, t_range=1.3, tracker=None).run(gm.coords.field(rho0))
    info = solver.info
    assert info["rejected"] > 0 and info["steps"] > 0
    assert info["jko_violations"] == 0 and info["energy_increases"] == 0
    assert gm.mass(final.data) == pytest.approx(1.0, abs=1e-12)


def test_schedule_enters_as_the_integral_of_xi():
    """xi = 2 constant runs the flow twice as fast: one run to t with xi = 2 equals a run
    to 2t with xi = 1, step for step."""
    import pde

    gm, rho0 = _setup(OU)
    gm2, _ = _setup(OU, model__xi=2.0)
    out = []
    for g, t in ((gm, 0.4), (gm2, 0.2)):
        solver = JKOSolver(LagrangianJKO(g), g.model.xi, dt=t / 10)
        out.append(pde.Controller(solver, t_range=t, tracker=None).run(g.coords.field(rho0)).data)
    assert np.max(np.abs(out[0] - out[1])) < 1e-12


def _mmn(kappa: float, cells: int):
    cfg = {"model": {"problem": "two-layer", "activation": "mmn-nonmonotone", "dim": 320, "delta": 0.5,
                     "kappa": kappa},
           "grid": {"r_max": 4.0, "cells": cells}}
    setup = build(resolve(cfg, solver=False), solver=False)
    return GridModel(setup.model, setup.coords), setup.initial.values


def test_mmn_nonmonotone_radial_both_limits_against_fine_fv():
    """MMN's non-monotone activation in d = 320 (noiseless SGD, beta = inf), initial radii
    concentrated at kappa with width kappa/sqrt(2d). kappa = 0.4 reaches a small risk: JKO on
    300 cells matches the FV reference on 2000 cells far better than FV on the same 300
    cells (the explicit upwind scheme's numerical diffusion). kappa = 0.1 collapses to w = 0:
    every atom ends held at the wall r = 0, the atoms' energy is that of the delta at 0,
    V(0) + U(0, 0)/2 = sigma(0)^2 / 2 = 3.125, and the grid density is the FV one."""
    T = 10.0
    gm_ref, rho_ref0 = _mmn(0.4, 2000)
    ref, _ = evolve(gm_ref, rho_ref0, T)
    gm, rho0 = _mmn(0.4, 300)
    fv, _ = evolve(gm, rho0, T)
    jko, info = evolve(gm, rho0, T, scheme="jko", dt=0.25)
    r_ref, r_fv, r_jko = gm_ref.risk(ref), gm.risk(fv), gm.risk(jko)
    assert r_ref < 0.02 and info["jko_violations"] == 0
    assert abs(r_jko - r_ref) < 5e-6 and abs(r_jko - r_ref) < 0.1 * abs(r_fv - r_ref), (r_ref, r_fv, r_jko)

    gm, rho0 = _mmn(0.1, 300)
    fv, _ = evolve(gm, rho0, T)
    method = LagrangianJKO(gm)
    solver = JKOSolver(method, gm.model.xi, dt=0.25)
    import pde

    final = pde.Controller(solver, t_range=T, tracker=None).run(gm.coords.field(rho0))
    assert np.max(solver.lagrangian_state) < 1e-9
    assert method.free_energy(solver.lagrangian_state) == pytest.approx(3.125, abs=1e-8)
    assert np.max(np.abs(final.data - fv)) < 1e-9 * np.max(fv)
    assert gm.risk(final.data) > 7.25  # the stuck state, far above kappa = 0.4's risk
