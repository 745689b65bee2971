"""The ``two-layer`` problem end to end: config keys and errors, the reduced PDE against
exact results (noisy-ReLU Gamma law, block reduction = radial reduction), and the
stationary-state non-uniqueness of the non-monotone activation."""

import math

import numpy as np
import pytest

from ddsolve import GridModel, Model, evolve, radial
from ddsolve.app.config import build, resolve
from ddsolve.app.runner import run
from ddsolve.laws.exact import gamma_cell_averages, relu_noisy_stationary
from ddsolve.laws.initial import gaussian_log_cell_averages, normalise_log_density
from ddsolve.networks.activations import mmn_ramp
from ddsolve.networks.data import GaussianMixtureData
from ddsolve.networks.reduction import ReducedKernel, ReducedPotential, TwoLayerReduction
from ddsolve.schema import ConfigError
from tests.helpers import observed_orders


def _config(**model):
    base = {"problem": "two-layer", "dim": 320, "activation": "mmn-nonmonotone"}
    base.update(model)
    return {"model": base, "grid": {"r_max": 4.0, "cells": 200}, "run": {"t_final": 1.0}}


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------
def test_grid_defaults_from_model():
    cfg = resolve(_config())
    assert cfg["grid"]["coordinates"] == "radial" and cfg["grid"]["dim"] == [320]
    assert cfg["initial"]["kind"] == "network"
    assert cfg["model"]["xi"] == 2.0 and math.isinf(cfg["model"]["beta"])
    aniso = resolve({**_config(data="anisotropic", s0=60, dim=320),
                     "grid": {"r_max": [3.0, 3.0], "cells": [40, 50]}})
    assert aniso["grid"]["dim"] == [60, 260]
    setup = build(aniso)
    assert setup.coords.radial_dims == (60, 260) and setup.coords.names == ("r1", "r2")
    assert resolve(resolve(_config())) == resolve(_config())  # resolved config is a fixed point


@pytest.mark.parametrize("change, key", [
    ({"grid": {"r_max": 4.0, "cells": 100, "dim": 10}}, "grid.dim"),
    ({"model": {"trained": ["w", "a"]}}, "grid.charge_bounds"),
    ({"grid": {"r_max": 4.0, "cells": 100, "charge_bounds": [-1, 1], "charge_cells": 10}},
     "grid.charge_bounds"),
    ({"model": {"data": "anisotropic", "s0": 320}}, "model.s0"),
    ({"model": {"trained": ["a"]}}, "model.trained"),
    ({"model": {"trained": ["w", "w"]}}, "model.trained"),
    ({"model": {"activation": "swish"}}, "model.activation"),
    ({"model": {"activation": "piecewise-linear"}}, "model.breakpoints"),
    ({"model": {"activation": "piecewise-linear", "breakpoints": [1, 0], "values": [0, 1]}},
     "model.activation"),
    ({"model": {"delta": 1.0}}, "model.delta"),
    ({"model": {"s0": 3}}, "model.s0"),
    ({"model": {"angles": "approx"}}, "model.angles"),
])
def test_config_errors_name_the_key(change, key):
    cfg = _config()
    for section, values in change.items():
        cfg[section] = {**cfg[section], **values}
    with pytest.raises(ConfigError) as err:
        build(cfg)
    assert err.value.key == key, str(err.value)


def test_piecewise_linear_activation_from_config():
    cfg = _config(activation="piecewise-linear", breakpoints=[0.5, 1.5], values=[-2.5, 7.5])
    setup = build(cfg)
    ref = build(_config(activation="mmn-ramp"))
    r = np.linspace(0.05, 3.0, 7)[:, None]
    assert np.allclose(setup.model.potential(r), ref.model.potential(r), rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------
# exact results
# ---------------------------------------------------------------------------------------
def _relu_noisy(cells, dim=10, delta=0.5, beta=50.0, r_max=6.0, t_final=300.0):
    data = GaussianMixtureData.isotropic(dim, delta)
    from ddsolve.networks.activations import relu

    red = TwoLayerReduction(data, relu())
    coords = radial(dim, r_max, cells)
    model = Model(ReducedPotential(red), ReducedKernel(red), beta=beta, xi=2.0, ndim=1,
                  radial_dim=dim, risk_offset=data.risk_offset)
    gm = GridModel(model, coords)
    rho0, _ = normalise_log_density(gaussian_log_cell_averages(coords, 0.0, 1.0 / math.sqrt(dim)),
                                    coords, "initial")
    rho, _ = evolve(gm, rho0, t_final)
    return gm, rho


def test_noisy_relu_reaches_gamma_law_second_order():
    """Noisy SGD, ReLU, isotropic data: the stationary law of r is Gamma(d, beta lambda)
    with the self-consistent mean of :func:`ddsolve.laws.exact.relu_noisy_stationary`; the
    PDE's limit converges to it at second order in h and the free energy decreases."""
    ex = relu_noisy_stationary(10, 0.5, 50.0)
    errors, means = [], []
    for cells in (60, 120, 240):
        gm, rho = _relu_noisy(cells)
        edges = gm.coords.axes[0].edges
        exact = gamma_cell_averages(edges, ex["shape"], ex["rate"])
        errors.append(np.sum(np.abs(rho - exact)) * gm.coords.spacing[0])
        means.append(gm.moments(rho)["mean_r"])
        assert gm.dissipation(rho) < 1e-12  # stationary
    orders = observed_orders([1 / 60, 1 / 120, 1 / 240], errors)
    assert errors[-1] < 1e-3
    assert np.all(orders > 1.8), (errors, orders)
    assert abs(means[-1] - ex["mean"]) < 1e-3 * ex["mean"]


def test_block_reduction_agrees_with_radial_reduction():
    """Isotropic data written with two blocks (equal scales in both): from a
    rotation-invariant initial law the (r1, r2) PDE is the radial PDE seen in other
    coordinates, so the risks agree up to the discretisation error (which shrinks with h)."""
    d, s0, delta, kappa = 40, 16, 0.5, 0.8
    iso = GaussianMixtureData.isotropic(d, delta)
    two = GaussianMixtureData([s0, d - s0], [0.5, 0.5], [1.0, -1.0],
                              [[1 + delta] * 2, [1 - delta] * 2])
    std = kappa / math.sqrt(d)
    risks = {}
    for name, data, coords in (("radial", iso, radial(d, 2.5, 200)),
                               ("blocks", two, radial([s0, d - s0], 2.5, 50))):
        red = TwoLayerReduction(data, mmn_ramp())
        model = Model(ReducedPotential(red), ReducedKernel(red), beta=math.inf, xi=2.0,
                      ndim=coords.ndim, radial_dim=coords.radial_dims, risk_offset=1.0)
        gm = GridModel(model, coords)
        rho0, _ = normalise_log_density(gaussian_log_cell_averages(coords, 0.0, std), coords, "i")
        r0 = gm.risk(rho0)
        rho, _ = evolve(gm, rho0, 1.0)
        risks[name] = (r0, gm.risk(rho))
    (a0, a1), (b0, b1) = risks["radial"], risks["blocks"]
    assert abs(a0 - b0) < 2e-3 * abs(a0)  # same initial law, different grids
    assert abs(a1 - a0) > 0.1 * abs(a0)  # the risk moved ...
    assert abs(a1 - b1) < 0.02 * abs(a0 - a1)  # ... by the same amount in both models


def test_nonmonotone_stationary_states_differ(tmp_path):
    """MMN's non-monotone activation, d = 320, Delta = 0.5: kappa = 0.4 reaches a small
    risk, kappa = 0.1 is stuck at high risk (mass at w = 0) — two different stationary
    states of the same PDE, both with vanishing dissipation."""
    finals = {}
    for kappa in (0.1, 0.4):
        cfg = _config(kappa=kappa)
        cfg["grid"] = {"r_max": 4.0, "cells": 400}
        cfg["run"] = {"t_final": 200.0, "save_every": 100.0}
        res = run(cfg, out_dir=tmp_path / f"kappa_{kappa}")
        finals[kappa] = res.diagnostics[-1]
    low, high = finals[0.4]["risk"], finals[0.1]["risk"]
    assert low < 0.01 and high > 7.0, (low, high)
    assert finals[0.1]["mean_r"] < 0.01  # collapsed to r = 0
    for row in finals.values():
        assert row["dissipation"] < 1e-6 * max(1.0, row["risk"])
        assert abs(row["mass"] - 1) < 1e-12


def test_risk_column_and_energy_decay(tmp_path):
    """The risk column is R# + 2E and, without noise, decreases (discrete energy decay)."""
    cfg = _config(kappa=0.4, activation="mmn-ramp")
    cfg["run"] = {"t_final": 5.0, "save_every": 0.5, "out": str(tmp_path / "out")}
    res = run(cfg)
    risk = np.array([r["risk"] for r in res.diagnostics])
    energy = np.array([r["energy"] for r in res.diagnostics])
    assert np.allclose(risk, 1.0 + 2 * energy, rtol=0, atol=1e-13)
    assert np.all(np.diff(risk) <= 1e-12)
    assert res.summary["model"]["two_layer"]["hermite_order"] >= 2
    assert res.summary["model"]["two_layer"]["truncation_bound"] <= 1e-10


def test_second_layer_model_runs_and_dissipates(tmp_path):
    """(r, a) model: mass to round-off, positivity, energy decay (risk decreases)."""
    cfg = _config(dim=40, trained=["w", "a"], activation="mmn-ramp", kappa=0.8)
    cfg["grid"] = {"r_max": 3.0, "cells": 60, "charge_bounds": [-1.0, 3.0], "charge_cells": 40}
    cfg["initial"] = {"a_mean": 1.0, "a_std": 0.2}
    cfg["run"] = {"t_final": 2.0, "save_every": 0.5, "out": str(tmp_path / "ra")}
    res = run(cfg)
    rows = res.diagnostics
    assert res.setup.coords.radial_dims == (40, None)
    risk = np.array([r["risk"] for r in rows])
    assert np.all(np.diff(risk) <= 1e-12) and risk[-1] < risk[0] - 0.1
    assert max(abs(r["mass"] - 1) for r in rows) < 1e-12
    assert min(r["min_density"] for r in rows) >= 0.0


# ---------------------------------------------------------------------------------------
# teacher-student data: (s, u) reduction
# ---------------------------------------------------------------------------------------
def _teacher_config(**model):
    base = {"problem": "two-layer", "data": "teacher", "activation": "relu", "dim": 20,
            "teacher_norm": 1.0, "kappa": 0.5}
    base.update(model)
    return {"model": base,
            "grid": {"r_max": 1.5, "cells": 60, "charge_bounds": [-1.0, 2.0], "charge_cells": 90},
            "run": {"t_final": 50.0, "save_every": 10.0}}


def test_teacher_reduction_against_sampled_data():
    """V(s, u) = -E[y sigma(<w, x>)] against Monte Carlo with full vectors w in R^d (5
    standard errors); the kernel against the angle quadrature of the correlated Gaussian
    expectation; the risk of the teacher itself (a point mass at (0, |w*|)) is 0."""
    import warnings

    from ddsolve.networks.activations import correlated_expectation, mmn_ramp, relu
    from ddsolve.networks.reduction import TeacherReduction, angle_quadrature

    rng = np.random.default_rng(7)
    d = 12
    for act in (relu(), mmn_ramp()):
        red = TeacherReduction(d, act, teacher_norm=1.3, teacher_weight=0.8)
        data = red.teacher_data()
        x, y = data.sample(300_000, rng)
        assert abs(red.risk_offset - np.mean(y**2)) < 5 * np.std(y**2) / math.sqrt(y.size)
        for s, u in ((0.7, -0.4), (0.2, 1.1), (1.0, 0.0)):
            w = np.zeros(d)
            w[0], w[1] = u, s  # teacher direction e_1
            vals = -y * act(x @ w)
            V = float(red.potential(np.array([[s, u]]))[0])
            assert abs(V - vals.mean()) < 5 * vals.std() / math.sqrt(vals.size), (act.name, s, u)
        p, q = np.array([0.7, -0.4]), np.array([0.3, 0.9])
        A, B = np.hypot(*p), np.hypot(*q)
        t, wt = angle_quadrature(d - 1)
        ref = correlated_expectation(act, A, B, (p[1] * q[1] + p[0] * q[0] * t) / (A * B)) @ wt
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            K, bound = red.choose_order(np.stack([p, q]))
            got = float(red.kernel(p, q))
        scale = float(act.second_moment(np.array(max(A, B))))
        assert abs(got - ref) <= max(bound, 1e-12) * scale + 1e-10, (act.name, got, ref, bound)
    # a student equal to the teacher (a* = 1) has zero risk: R# + 2V + u = 0 at (0, |w*|)
    red = TeacherReduction(d, mmn_ramp(), teacher_norm=1.3)
    star = np.array([0.0, 1.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        K, bound = red.choose_order(star[None])
        R = red.risk_offset + 2 * float(red.potential(star[None])[0]) + float(red.kernel(star, star))
    assert abs(R) <= bound * red.risk_offset + 1e-9, (R, bound)


def test_teacher_config_and_learning(tmp_path):
    """data = "teacher": (s, u) grid with the charge axis named u; the PDE from
    w ~ N(0, kappa^2/d I) learns the teacher: risk decreases monotonically to < 1e-3 of its
    start and the mean of u approaches |w*|; mass and positivity hold."""
    setup = build(_teacher_config())
    assert setup.coords.names == ("r", "u") and setup.coords.radial_dims == (19, None)
    for change, key in (({"trained": ["w", "a"]}, "model.trained"),
                        ({"delta": 0.5}, "model.delta")):
        with pytest.raises(ConfigError) as err:
            build(_teacher_config(**change))
        assert err.value.key == key
    cfg = _teacher_config()
    cfg["grid"] = {"r_max": 1.5, "cells": 60}
    with pytest.raises(ConfigError) as err:
        build(cfg)
    assert err.value.key == "grid.charge_bounds"
    with pytest.warns(UserWarning, match="Hermite series truncated"):
        res = run(_teacher_config(), out_dir=tmp_path / "teacher")
    rows = res.diagnostics
    risk = np.array([r["risk"] for r in rows])
    assert np.all(np.diff(risk) <= 1e-12)
    assert risk[-1] < 1e-3 * risk[0]
    assert abs(rows[-1]["mean_u"] - 1.0) < 2e-3
    assert max(abs(r["mass"] - 1) for r in rows) < 1e-12
    assert min(r["min_density"] for r in rows) >= 0.0
