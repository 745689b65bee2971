"""The real finite network against the PDE's exact answers, and every SGD-family method
through ``ddsolve particles``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddsolve.laws.exact import relu_noisy_stationary
from ddsolve.networks.activations import mmn_nonmonotone, relu
from ddsolve.networks.data import GaussianMixtureData
from particles.runner import run_particles
from particles.sgd import TwoLayerSGD


def test_noisy_sgd_reaches_the_exact_gamma_stationary_law():
    """Noisy SGD of a ReLU network on isotropic Gaussians (d = 10, Delta = 0.5, beta = 50):
    the PDE's stationary law of r = |w| is Gamma(d, d/mean) with the self-consistent mean
    1.56494 (ddsolve.laws.exact.relu_noisy_stationary). The time-averaged mean radius of 400
    neurons must match it; noise of variance 2s_k/beta or 8s_k/beta (a factor 2 off) gives
    1.94 or 1.32."""
    exact = relu_noisy_stationary(10, 0.5, 50.0)
    eps = 2e-3
    sgd = TwoLayerSGD(GaussianMixtureData.isotropic(10, 0.5), relu(), 400, eps, beta=50.0, risk="none")
    rng = np.random.default_rng(0)
    state = sgd.initial_state(rng)
    sgd.advance(state, int(100 / eps), rng)  # relax (the PDE example is stationary by t ~ 100)
    r1, r2 = [], []
    for _ in range(20):
        sgd.advance(state, int(5 / eps), rng)
        r = sgd.coordinates(state)[:, 0]
        r1.append(r.mean())
        r2.append(np.mean(r**2))
    assert abs(np.mean(r1) - exact["mean"]) < 0.03
    m2 = exact["mean"] ** 2 * (1 + 1 / 10)  # Gamma(d, d/m): E r^2 = m^2 (1 + 1/d)
    assert abs(np.mean(r2) - m2) < 0.1


def test_dropout_has_the_same_mean_field_limit_as_sgd():
    """Inverted dropout with keep-probability p = 1/2 follows the same PDE as plain SGD:
    at t = 2 (d = 40, N = 800, eps = 5e-5) their risks agree to well within the O(eps)
    difference between eps = 5e-5 and 2.5e-5 runs, while dropping the 1/p in the update
    would slow time by p (risk at t = 2 would be plain SGD's at t = 1, 0.086)."""
    data, act = GaussianMixtureData.isotropic(40, 0.5), mmn_nonmonotone()
    risks = {}
    for p in (1.0, 0.5):
        sgd = TwoLayerSGD(data, act, 800, 5e-5, dropout=p)
        rng = np.random.default_rng(0)
        state = sgd.initial_state(rng)
        sgd.advance(state, 40_000, rng)
        risks[p] = sgd.diagnostics(state)["risk"]
    assert abs(risks[0.5] - risks[1.0]) < 0.003, risks
    assert risks[0.5] < 0.075


TWO_LAYER = {
    "model": {"problem": "two-layer", "activation": "relu", "dim": 12, "delta": 0.5, "kappa": 0.4},
    "particles": {"n": 60, "eps": 1e-3, "steps": 400, "snapshots": 3, "batch": 2},
}


@pytest.mark.parametrize("method", ["sgd", "nesterov", "restarted-nesterov", "mass"])
def test_sgd_family_through_the_runner(tmp_path, method):
    cfg = {**TWO_LAYER, "particles": {**TWO_LAYER["particles"], "method": method}}
    res = run_particles(cfg, tmp_path / method)
    rows = res.rows
    # PDE time per step is eps for SGD, eps (eta1 - eta2)/(1 - gamma) with momentum
    assert [r["t"] for r in rows] == pytest.approx([0.0, 200 * res.dynamics.dt, 400 * res.dynamics.dt])
    assert {"risk", "energy", "mean_r", "m2_r"} <= set(rows[0])
    assert rows[-1]["risk"] < rows[0]["risk"]  # training reduces the population risk
    assert res.summary["status"] == "ok"
    again = run_particles(cfg, tmp_path / (method + "2"))
    assert np.array_equal(res.state.x, again.state.x)


def test_sgd_runner_rejects_other_initial_laws(tmp_path):
    cfg = {**TWO_LAYER, "particles": {**TWO_LAYER["particles"], "method": "sgd"},
           "initial": {"kind": "gaussian", "std": 0.1}}
    with pytest.raises(Exception, match="network"):
        run_particles(cfg, tmp_path / "x")


def test_hmm_through_the_runner(tmp_path):
    cfg = {
        "model": {"problem": "curie-weiss", "potential": "quadratic", "stiffness": 4.0, "theta": 1.0,
                  "beta": 1.0},
        "grid": {"bounds": [-3.0, 3.0], "cells": 60},
        "initial": {"kind": "gaussian", "mean": 1.0, "std": 0.1},
        "particles": {"method": "hmm", "n": 200, "t_final": 1.0, "dt": 0.01, "gamma": 0.5,
                      "scale_separation": 1.0, "inner_dt": 0.01, "inner_steps": 50, "burn_in": 10},
    }
    res = run_particles(cfg, tmp_path / "hmm")
    # homogenised mean dynamics: m' = -a/(1 + a gamma) m = -(4/3) m (the coupling cancels)
    m = res.rows[-1]["mean_x"]
    assert m == pytest.approx(math.exp(-4 / 3), abs=0.03)


@pytest.mark.parametrize("dropout", [1.0, 0.5])
def test_sgd_trajectory_does_not_depend_on_the_snapshot_schedule(dropout):
    """Data and dropout masks come from streams aligned to the global step index, so
    advancing 2500 steps at once or in pieces of 137, 900, 1, 1462 gives the same weights."""
    sgd = TwoLayerSGD(GaussianMixtureData.isotropic(16, 0.5), relu(), 50, 1e-3, dropout=dropout,
                      risk="none", chunk=1000)
    states = []
    for pieces in ([2500], [137, 900, 1, 1462]):
        rng = np.random.default_rng(11)
        state = sgd.initial_state(rng)
        for n in pieces:
            sgd.advance(state, n, rng)
        states.append(state.x)
    assert np.allclose(states[0], states[1], rtol=1e-12, atol=1e-13)


@pytest.mark.slow
def test_mean_field_particles_on_the_reduced_model_match_the_pde(tmp_path):
    """The mean-field particles of the reduced two-layer model (radii, O(N T) feature force,
    N = 1000, Heun, dt = 0.01) follow the finite-volume PDE's risk (800 cells) through the
    transient 6.8 -> 0.07 and to t = 10 within 1% (d = 40, non-monotone sigma; measured
    differences about 0.2%; Euler-Maruyama at this dt is 5% off at t = 0.3, first order in dt)."""
    from pathlib import Path

    import tomllib

    from ddsolve.app.io import read_diagnostics
    from ddsolve.app.runner import run

    raw = tomllib.loads((Path(__file__).parents[2] / "examples" / "sgd_vs_pde.toml").read_text())
    run(raw, tmp_path / "pde")
    raw["particles"] = {"method": "mean-field", "n": 1000, "dt": 0.01, "t_final": 10.0,
                        "integrator": "heun", "snapshots": [0.0, 0.1, 0.3, 0.5, 1.0, 10.0]}
    res = run_particles(raw, tmp_path / "particles")
    pde = read_diagnostics(tmp_path / "pde" / "diagnostics.csv")
    assert res.dynamics.force.method == "features"
    for row in res.rows[1:]:  # the transient and the end
        pde_risk = np.interp(row["t"], pde["t"], pde["risk"])
        assert abs(row["risk"] - pde_risk) < 0.01 * pde_risk, (row, pde_risk)
