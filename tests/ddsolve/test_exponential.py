"""The exponential integrator of linear 1D problems (ddsolve.schemes.fv.exponential): the
contour rule against its error bound, the result against the dense matrix exponential and
against ESDIRK4 at round-off tolerances, the invariants, schedules, and the automatic choice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg

from ddsolve import DistributionalDynamicsPDE, GridModel, Model, cartesian
from ddsolve.app.config import build
from ddsolve.laws.exact import gaussian_cell_averages
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.model.potentials import DoubleWellPotential, ExpressionPotential, QuadraticPotential
from ddsolve.model.schedule import Schedule
from ddsolve.schema import ConfigError
from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver
from ddsolve.schemes.fv.auto import choose_time
from ddsolve.schemes.fv.exponential import (
    NODES_RANGE,
    QUADRATURE_ERROR_BOUND,
    TALBOT_RATE,
    ExponentialFVSolver,
    log_amplification,
    talbot_nodes,
)
from tests.helpers import OU_CONFIG, write_config


def _gm(potential, bounds, M, beta=1.0, periodic=False, xi=None):
    model = Model(potential=potential, beta=beta, **({} if xi is None else {"xi": xi}))
    return GridModel(model, cartesian(list(bounds), M, periodic=periodic))


def _rho0(gm, mean, std):
    rho = gaussian_cell_averages(gm.coords.axes[0].edges, mean, std)
    return rho / (rho.sum() * gm.coords.cell_volume)


def _expo(gm, rho0, times, **kw):
    solver = ExponentialFVSolver(DistributionalDynamicsPDE(gm, order=1), **kw)
    state = gm.coords.field(np.array(rho0, dtype=float))
    stepper = solver.make_stepper(state)
    out, t = [], 0.0
    for t1 in times:
        assert stepper(state, t, t1) == t1
        out.append(state.data.copy())
        t = t1
    return out, solver


def _reference(gm, rho0, t):
    """ESDIRK4 with the same (sg) flux at round-off tolerances: the same semi-discrete flow."""
    solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), "esdirk4", rtol=1e-12,
                              atol=1e-15, flux="sg")
    state = gm.coords.field(np.array(rho0, dtype=float))
    solver.make_stepper(state)(state, 0.0, t)
    return state.data.copy()


def _l1(gm, a, b):
    return float(np.abs(a - b).sum() * gm.coords.cell_volume)


def _dense_operator(solver):
    """The matrix A of the solver's lines, dense (corners included)."""
    sub, dia, sup, clo, chi = (np.asarray(a).ravel() for a in solver.lines)
    n = dia.size
    A = np.diag(dia) + np.diag(sub[1:], -1) + np.diag(sup[:-1], 1)
    A[n - 1, 0] += clo[0]
    A[0, n - 1] += chi[0]
    return A


def test_contour_rule_meets_its_error_bound_at_the_rate():
    """max over lambda <= 0 of |r_n(lambda) - e^lambda|: below the documented bound, and within
    a factor 10 of it (so the rate e^{-1.358 n} is what the rule achieves, not a loose bound)."""
    lam = -np.concatenate([[0.0], np.logspace(-8, 12, 3000)])
    for n in range(NODES_RANGE[0], NODES_RANGE[1] + 1, 2):
        z, w = talbot_nodes(n)
        r = 2.0 * np.real(np.sum(w[None, :] / (z[None, :] - lam[:, None]), axis=1))
        err = np.max(np.abs(r - np.exp(lam)))
        bound = QUADRATURE_ERROR_BOUND * math.exp(-TALBOT_RATE * n)
        assert err <= max(bound, 3e-14), n
        if n <= 22:
            assert err > 0.1 * bound, n
    with pytest.raises(ValueError, match="even"):
        talbot_nodes(7)


@pytest.mark.parametrize("depth", [5.0, 2000.0])
def test_amplification_is_the_weighted_norm_ratio(depth):
    """a(b) = ||b||_* ||rho_inf||_1^(1/2) / ||b||_1 against a direct log-sum-exp evaluation,
    for a Gibbs state of moderate depth and one whose reciprocal overflows (the fallback)."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 80)
    log_gibbs = -depth * x**2
    b = rng.random(80) * np.exp(-3 * x**2)
    b[::7] = 0.0
    with np.errstate(over="ignore"):
        inv = np.exp(log_gibbs.max() - log_gibbs)
    assert np.isinf(inv).any() == (depth > 700)
    got = log_amplification(b.reshape(-1, 1), log_gibbs, inv, float(np.sum(np.exp(log_gibbs - log_gibbs.max()))))
    pos = b > 0
    want = 0.5 * (logsumexp(2 * np.log(b[pos]) - log_gibbs[pos]) + logsumexp(log_gibbs)) - math.log(b.sum())
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12) and got >= 0.0
    # the Gibbs state itself has amplification 1
    g = np.exp(log_gibbs - log_gibbs.max()).reshape(-1, 1)
    if depth < 700:
        assert log_amplification(g, log_gibbs, inv, float(g.sum())) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("case", ["ou", "periodic"])
def test_matches_the_dense_matrix_exponential(case):
    if case == "ou":
        gm = _gm(QuadraticPotential(1.0), [-6, 6], 50)
        rho0 = _rho0(gm, 1.0, 0.5)
    else:  # a torus: cyclic lines (Sherman-Morrison)
        gm = _gm(ExpressionPotential("cos(x) + 0.3*sin(2*x)"), [0, 2 * np.pi], 40, beta=2.0, periodic=True)
        rho0 = _rho0(gm, 2.0, 0.4)
    for t in (0.01, 0.3, 5.0):
        (rho,), solver = _expo(gm, rho0, [t], nodes=24)
        A = _dense_operator(solver)
        assert np.allclose(A.sum(axis=0), 0.0, atol=1e-10 * np.abs(A).max())  # mass
        if case == "periodic":
            assert A[0, -1] != 0 and A[-1, 0] != 0
        exact = scipy.linalg.expm(t * A) @ rho0
        assert _l1(gm, rho, exact) < 1e-11, t
        # the auto node count meets its own bound: rtol/10 times the amplification
        (rho_a,), sa = _expo(gm, rho0, [t])
        assert _l1(gm, rho_a, exact) <= 0.1 * sa.rtol * sa.info["amplification_max"]
        assert sa.info["nodes_max"] < 24


CASES = {  # name: (potential, bounds, beta, initial mean, std, t)
    "ou": (QuadraticPotential(1.0), (-6, 6), 1.0, 1.0, 0.5, 1.0),
    "ou-from-the-tail": (QuadraticPotential(1.0), (-6, 6), 1.0, 5.0, 0.3, 0.5),
    "double-well": (DoubleWellPotential(), (-3, 3), 3.0, 0.1, 0.5, 10.0),
    "double-well-beta-20": (DoubleWellPotential(), (-2, 2), 20.0, 1.2, 0.2, 5.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("M", [160, 640])
def test_time_error_at_the_auto_tolerance_is_below_a_tenth_of_the_spatial_error(name, M):
    """The only time error is the quadrature's: against ESDIRK4 at round-off tolerances on the
    same grid (the same semi-discrete flow) it is far below the spatial error (against 4M
    cells). Measured 2e-8 .. 9e-3 of it; one node pair fewer than the amplification rule
    gives (on the tail start) up to 0.8."""
    pot, bounds, beta, mean, std, t = CASES[name]
    gm, fine = _gm(pot, bounds, M, beta), _gm(pot, bounds, 4 * M, beta)
    (rho,), solver = _expo(gm, _rho0(gm, mean, std), [t])
    (rho_f,), _ = _expo(fine, _rho0(fine, mean, std), [t], nodes=24)
    ref = _reference(gm, _rho0(gm, mean, std), t)
    spatial = _l1(gm, ref, rho_f.reshape(M, 4).mean(axis=1))
    assert _l1(gm, rho, ref) < 0.1 * spatial
    assert solver.info["steps"] == 1 and solver.info["solves"] == solver.info["nodes_max"] // 2


def test_invariants_mass_positivity_free_energy_and_the_gibbs_limit():
    gm = _gm(DoubleWellPotential(), [-3, 3], 200, beta=3.0)
    rho0 = _rho0(gm, 0.1, 0.5)
    times = list(np.geomspace(1e-3, 200.0, 30))
    out, solver = _expo(gm, rho0, times)
    mass0 = rho0.sum()
    F = [gm.free_energy(r) for r in out]
    for r in out:
        assert abs(r.sum() - mass0) < 1e-14 * mass0 and r.min() >= 0.0
    assert np.all(np.diff(F) <= 1e-12 * np.abs(F[:-1])) and solver.info["energy_increases"] == 0
    gibbs = gm.gibbs()
    assert _l1(gm, out[-1], gibbs / (gibbs.sum() * gm.coords.cell_volume)) < 1e-10
    assert solver.info["clipped_max"] < 1e-12


def test_one_interval_equals_many_and_time_dependent_schedules():
    """Semigroup: one call over [0, 2] equals 20 calls of 0.1. A power schedule xi(t) advances
    by its integral: the same as ESDIRK4 (round-off tolerances) with that schedule."""
    gm = _gm(QuadraticPotential(1.0), [-6, 6], 120)
    rho0 = _rho0(gm, 1.0, 0.5)
    (one,), _ = _expo(gm, rho0, [2.0], nodes=24)
    many, s = _expo(gm, rho0, list(np.linspace(0.1, 2.0, 20)), nodes=24)
    assert _l1(gm, one, many[-1]) < 1e-12 and s.info["steps"] == 20
    xi = Schedule.power(2.0, 0.5, 1.0)
    gm_xi = _gm(QuadraticPotential(1.0), [-6, 6], 120, xi=xi)
    (rho,), _ = _expo(gm_xi, rho0, [1.5], nodes=24)
    assert _l1(gm_xi, rho, _reference(gm_xi, rho0, 1.5)) < 1e-9
    # and it is not the constant-xi answer
    assert _l1(gm_xi, rho, _expo(gm, rho0, [1.5], nodes=24)[0][0]) > 1e-3


def test_auto_chooses_the_exponential_only_for_linear_one_dimensional_problems():
    ou = _gm(QuadraticPotential(1.0), [-6, 6], 100)
    mode, reason = choose_time(ou, {"time": "auto"}, None, 10.0)
    assert mode == "exponential" and "linear" in reason
    assert choose_time(ou, {"time": "auto"}, None, 1e-6)[0] == "exponential"  # short runs too
    cw = GridModel(Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(1.0), beta=3.0),
                   cartesian([-3, 3], 100))
    assert choose_time(cw, {"time": "auto"}, None, 10.0)[0] == "imex"  # nonlinear: the semi-implicit pair
    two_d = GridModel(Model(potential=ExpressionPotential("x**2 + y**2", ndim=2), beta=1.0, ndim=2),
                      cartesian([[-3, 3], [-3, 3]], [20, 20]))
    assert choose_time(two_d, {"time": "auto"}, None, 10.0)[0] == "implicit"
    no_diffusion = GridModel(Model(potential=QuadraticPotential(1.0)), cartesian([-6, 6], 100))
    assert choose_time(no_diffusion, {"time": "auto"}, None, 10.0)[0] == "explicit"
    for gm, why in ((cw, "interaction"), (two_d, "one-dimensional"), (no_diffusion, "diffusion")):
        with pytest.raises(ValueError, match=why):
            ExponentialFVSolver(DistributionalDynamicsPDE(gm, order=1))
    with pytest.raises(ValueError, match="nodes"):
        ExponentialFVSolver(DistributionalDynamicsPDE(ou, order=1), nodes=5)


def test_run_command_uses_it_and_matches_the_exact_solution(tmp_path, capsys):
    from ddsolve.app.cli import main

    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path, OU_CONFIG)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    solver = summary["solver"]
    assert solver["time"] == "exponential" and solver["time_reason"] in printed
    assert solver["method"] == "exponential" and solver["steps"] == 1
    assert abs(summary["final"]["mass"] - 1.0) < 1e-12
    # OU from N(1, 0.5^2): N(e^{-t}, 1 - 0.75 e^{-2t}) at t = 0.5, on 60 cells
    cfg = build({"model": {"problem": "fokker-planck", "potential": "quadratic", "stiffness": 1.0, "beta": 1.0},
                 "grid": {"bounds": [-6.0, 6.0], "cells": 60},
                 "initial": {"kind": "gaussian", "mean": 1.0, "std": 0.5}, "run": {"t_final": 0.5}})
    edges = cfg.coords.axes[0].edges
    exact = gaussian_cell_averages(edges, math.exp(-0.5), math.sqrt(1 - 0.75 * math.exp(-1.0)))
    import pde

    storage = pde.FileStorage(out / "density.h5", write_mode="readonly")
    data = np.asarray(storage[-1].data)
    assert np.abs(data.ravel() - exact).sum() * (edges[1] - edges[0]) < 5e-3  # the 60-cell spatial error


def test_bad_config_names_the_key():
    base = {"model": {"problem": "curie-weiss", "potential": "double-well", "theta": 1.0, "beta": 3.0},
            "grid": {"bounds": [-3.0, 3.0], "cells": 40},
            "initial": {"kind": "gaussian", "mean": 0.1, "std": 0.5}, "run": {"t_final": 1.0},
            "scheme": {"time": "exponential"}}
    from ddsolve.app.runner import run

    with pytest.raises(ConfigError, match="scheme.time.*interaction"):
        run(base, "/nonexistent/never-written")
