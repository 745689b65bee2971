"""Problem registry, built-in problems and initial laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ddsolve import GridModel, cartesian, radial, with_charge
from ddsolve.app.config import build, resolve
from ddsolve.laws.initial import (
    InitialContext,
    InitialKind,
    chi_log_pdf,
    chi_mean,
    gaussian_log_cell_averages,
    initial_density,
    resolve_initial,
)
from ddsolve.model.kernels import ConvolutionExpressionKernel, CosineKernel, ExpressionKernel, QuadraticKernel
from ddsolve.problems import PROBLEMS, get_problem, register, unregister
from ddsolve.problems.base import Problem
from ddsolve.schema import ConfigError, Param, Real


def _config(model, grid=None, initial=None, **run):
    raw = {"model": model, "grid": grid or {"bounds": [-5, 5], "cells": 40},
           "run": {"t_final": 0.1, **run}}
    if initial is not None:
        raw["initial"] = initial
    return raw


# ---------------------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------------------
BUILDS = {
    "fokker-planck": ({"potential": "x**2/2 + sin(3*x)"}, {"bounds": [-5, 5], "cells": 40}),
    "curie-weiss": ({"theta": 0.7, "beta": 5.0}, {"bounds": [[-5, 5], [-4, 4]], "cells": [12, 10]}),
    "kuramoto": ({"kappa": 2.5}, {"bounds": [0, 2 * math.pi], "cells": 32, "periodic": True}),
    "aggregation": ({}, {"bounds": [-5, 5], "cells": 50}),
    "custom": ({"potential": "x**4", "interaction": "exp(-(x - y)**2)"}, {"bounds": [-5, 5], "cells": 30}),
}


def test_registry_lists_the_builtin_problems():
    assert set(BUILDS) <= set(PROBLEMS)
    for name, problem in PROBLEMS.items():
        assert problem.name == name
        assert problem.doc
        assert all(p.doc for p in problem.parameters())
        text = problem.describe()
        assert name in text and all(p.name in text for p in problem.parameters())


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_each_problem_builds_and_discretises(name):
    params, grid = BUILDS[name]
    setup = build(_config({"problem": name, **params}, grid))
    assert setup.problem is PROBLEMS[name]
    assert setup.model.name == name
    gm = GridModel(setup.model, setup.coords)
    row = gm.diagnostics(setup.initial.values, 0.0)
    assert row["mass"] == pytest.approx(1.0, abs=1e-13)
    assert all(np.isfinite(v) for v in row.values())


def test_problem_models_have_the_documented_terms():
    cw = build(_config({"problem": "curie-weiss", "theta": 0.3, "depth": 2.0}))
    assert isinstance(cw.model.interaction, QuadraticKernel) and cw.model.interaction.theta == 0.3
    x = np.array([[1.5]])
    assert cw.model.potential(x)[0] == pytest.approx(2.0 * (1.5**4 / 4 - 1.5**2 / 2))

    ku = build(_config({"problem": "kuramoto", "kappa": 2.0},
                       {"bounds": [-1, 3], "cells": 16, "periodic": True}))
    assert isinstance(ku.model.interaction, CosineKernel)
    assert ku.model.interaction.length == pytest.approx(4.0)  # L is the domain length
    z = np.array([[0.7]])
    assert ku.model.interaction.W(z)[0] == pytest.approx(-2.0 * math.cos(2 * math.pi * 0.7 / 4.0))

    fp = build(_config({"problem": "fokker-planck", "stiffness": [[2.0, 0.5], [0.5, 1.0]], "center": [1, -1]},
                       {"bounds": [[-5, 5], [-5, 5]], "cells": 8}))
    p = np.array([[2.0, 0.0]])
    d = p - np.array([1.0, -1.0])
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert fp.model.potential(p)[0] == pytest.approx(0.5 * d[0] @ A @ d[0])


def test_kuramoto_needs_a_periodic_grid():
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "kuramoto"}, {"bounds": [0, 6.28], "cells": 20}))
    assert info.value.key == "grid.periodic"
    assert "periodic" in info.value.message
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "kuramoto"},
                      {"bounds": [[0, 6.28], [0, 3.0]], "cells": 8, "periodic": True}))
    assert info.value.key == "grid.bounds"


def test_aggregation_forces_beta_inf_and_takes_named_kernels():
    setup = build(_config({"problem": "aggregation"}))
    assert math.isinf(setup.model.beta) and setup.config["model"]["beta"] == math.inf
    for beta in (math.inf, "inf"):
        assert math.isinf(build(_config({"problem": "aggregation", "beta": beta})).model.beta)
    with pytest.raises(ConfigError) as info:
        resolve(_config({"problem": "aggregation", "beta": 3.0}))
    assert info.value.key == "model.beta"
    g = build(_config({"problem": "aggregation", "interaction": "gaussian", "amplitude": -2.0, "sigma": 0.5}))
    assert g.model.interaction.W(np.array([[0.0]]))[0] == pytest.approx(-2.0)
    e = build(_config({"problem": "aggregation", "interaction": "abs(z)**3/3 - z**2/2"}))
    assert isinstance(e.model.interaction, ConvolutionExpressionKernel)
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "aggregation", "interaction": "x*y"}))
    assert info.value.key == "model.interaction"
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "aggregation", "a": 1.0, "b": 2.0}))
    assert info.value.key == "model.a"


def test_custom_problem_expressions():
    xy = build(_config({"problem": "custom", "interaction": "cos(x - y)", "beta": 2.0}))
    assert isinstance(xy.model.interaction, ExpressionKernel)
    z = build(_config({"problem": "custom", "interaction": "z**2/2"}))
    assert isinstance(z.model.interaction, ConvolutionExpressionKernel)
    for model, key in (({"interaction": "quadratic"}, "model.interaction"),
                       ({"interaction": "x*y", "potential": "double-well"}, "model.potential"),
                       ({"interaction": "x*y + q"}, "model.interaction"),
                       ({"interaction": "x**2 * y"}, "model.interaction"),  # not symmetric
                       ({"interaction": "x*y", "potential": "y"}, "model.potential")):
        with pytest.raises(ConfigError) as info:
            build(_config({"problem": "custom", **model}))
        assert info.value.key == key


def test_potential_errors_name_keys():
    cases = [({"potential": "muller-brown"}, "model.potential"),
             ({"potential": "x**2 +"}, "model.potential"),
             ({"stiffness": [[1, 0], [0, 1]]}, "model.stiffness"),
             ({"center": [0, 1]}, "model.center")]
    for model, key in cases:
        with pytest.raises(ConfigError) as info:
            build(_config({"problem": "fokker-planck", **model}))
        assert info.value.key == key


def test_interacting_problems_are_cartesian_only():
    grid = {"coordinates": "radial", "dim": 3, "r_max": 5, "cells": 20}
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "curie-weiss"}, grid))
    assert info.value.key == "grid.coordinates"
    setup = build(_config({"problem": "fokker-planck", "potential": "r**2/2"}, grid))
    assert setup.model.radial_dim == 3


def test_problem_on_charge_grid():
    grid = {"bounds": [-4, 4], "cells": 10, "charge_bounds": [-2, 2], "charge_cells": 6}
    setup = build(_config({"problem": "fokker-planck", "potential": "x**2/2 + c**2"}, grid,
                          {"kind": "gaussian", "std": [0.7, 0.4]}))
    assert setup.coords.names == ("x", "c") and setup.coords.shape == (10, 6)
    assert setup.coords.integrate(setup.initial.values) == pytest.approx(1.0)


class _Shell(InitialKind):
    name = "shell"
    doc = "test kind: unit density on a shell"
    params = (Param("radius", Real(low=0, low_open=True), 1.0, "radius"),)
    main_key = "radius"

    def log_density(self, params, ctx):
        r = ctx.coords.axes[0].centers
        width = ctx.model_params["width"]
        return -((r - params["radius"]) ** 2) / (2 * width**2)


class _Toy(Problem):
    name = "toy-extension"
    doc = "test problem with its own initial law and diagnostics"
    params = (Param("width", Real(low=0, low_open=True), 0.3, "shell width"),)
    coordinates = ("radial",)

    def build_model(self, params, coords):
        from ddsolve.model.potentials import make_potential

        return self.make_model(params, coords, potential=make_potential("r**2/2", 1, names=("r",)))

    def initial_kinds(self):
        return {"shell": _Shell()}

    def extra_diagnostics(self, params, grid_model, rho):
        return {"peak_r": float(grid_model.coords.axes[0].centers[np.argmax(rho)])}


@pytest.fixture
def toy_problem():
    register(_Toy)
    yield PROBLEMS["toy-extension"]
    unregister("toy-extension")


def test_registry_extension_with_initial_kind_and_diagnostics(toy_problem, tmp_path):
    from ddsolve.app.io import read_diagnostics
    from ddsolve.app.runner import run

    raw = _config({"problem": "toy-extension", "width": 0.2},
                  {"coordinates": "radial", "dim": 4, "r_max": 4, "cells": 40},
                  {"kind": "shell", "radius": 2.0}, save_every=0.05)
    assert resolve(raw)["initial"] == {"kind": "shell", "radius": 2.0}
    with pytest.raises(ConfigError) as info:
        resolve({**raw, "initial": {"kind": "shell", "radius": -1}})
    assert info.value.key == "initial.radius"
    with pytest.raises(ValueError):
        register(_Toy)  # names are unique
    result = run(raw, tmp_path / "out")
    cols = read_diagnostics(tmp_path / "out" / "diagnostics.csv")
    assert list(cols)[-1] == "peak_r"
    assert cols["peak_r"][0] == pytest.approx(2.0, abs=0.1)
    assert result.status == "ok"
    assert "shell" in toy_problem.describe()


def test_unknown_problem():
    with pytest.raises(ConfigError) as info:
        get_problem("nope")
    assert info.value.key == "model.problem" and "fokker-planck" in info.value.message


# ---------------------------------------------------------------------------------------
# initial laws
# ---------------------------------------------------------------------------------------
def test_chi_log_pdf_matches_scipy():
    r = np.linspace(0.1, 30, 50)
    for d, s in ((1, 1.0), (3, 0.5), (50, 2.0)):
        assert np.allclose(chi_log_pdf(r, d, s), stats.chi.logpdf(r, d, scale=s), rtol=1e-10, atol=1e-10)
    assert chi_mean(2, 1.0) == pytest.approx(math.sqrt(math.pi / 2))
    assert chi_mean(320, 1.3) == pytest.approx(stats.chi.mean(320, scale=1.3), rel=1e-12)


@pytest.mark.parametrize("d, s", [(320, 1.0), (320, 0.05), (2, 1.0), (1000, 3.0)])
def test_radial_gaussian_law(d, s):
    """theta ~ N(0, s^2 I_d): the field is the chi_d density of r, with mass 1 on the grid
    before normalisation and the chi mean."""
    m = chi_mean(d, s)
    coords = radial(d, r_max=m + 12 * s, cells=800)
    log_rho = gaussian_log_cell_averages(coords, 0.0, s)
    mass = float(np.exp(np.logaddexp.reduce(log_rho)) * coords.cell_volume)
    assert mass == pytest.approx(1.0, abs=1e-10)
    init = initial_density({"kind": "gaussian", "mean": 0.0, "std": s}, InitialContext(coords))
    rho = init.values
    assert init.mass_on_grid == pytest.approx(1.0, abs=1e-10)
    assert coords.integrate(rho) == pytest.approx(1.0, abs=1e-13)
    r = coords.axes[0].centers
    h = coords.cell_volume  # moments of cell averages by the midpoint rule: error ~ h^2/12
    assert coords.integrate(r * rho) == pytest.approx(m, rel=1e-5)
    assert coords.integrate(r**2 * rho) == pytest.approx(d * s**2, abs=h**2 / 6)  # E|theta|^2 = d s^2


def test_radial_gaussian_through_config():
    setup = build(_config({"problem": "fokker-planck"},
                          {"coordinates": "radial", "dim": 320, "r_max": 30, "cells": 300}, {"std": 1.0}))
    r = setup.coords.axes[0].centers
    assert setup.coords.integrate(setup.initial.values) == pytest.approx(1.0, abs=1e-13)
    assert setup.initial.mass_on_grid == pytest.approx(1.0, abs=1e-9)
    assert setup.coords.integrate(r * setup.initial.values) == pytest.approx(chi_mean(320, 1.0), rel=1e-4)
    with pytest.raises(ConfigError) as info:
        build(_config({"problem": "fokker-planck"},
                      {"coordinates": "radial", "dim": 3, "r_max": 5, "cells": 30}, {"mean": 1.0}))
    assert info.value.key == "initial.mean"


def test_cartesian_gaussian_cell_averages_are_exact():
    coords = cartesian([-2, 3], 7)
    mu, s = 0.3, 0.8
    e = coords.axes[0].edges
    exact = np.diff(stats.norm.cdf(e, mu, s)) / coords.axes[0].spacing
    assert np.allclose(np.exp(gaussian_log_cell_averages(coords, mu, s)), exact, rtol=1e-13)
    # far tails are finite in logs (no underflow to -inf)
    far = gaussian_log_cell_averages(cartesian([30, 40], 10), 0.0, 1.0)
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) < 0)


def test_gaussian_covariance_and_periodic_wrapping():
    coords = cartesian([[-4, 4], [-4, 4]], [40, 40])
    C = [[1.0, 0.6], [0.6, 0.5]]
    rho = initial_density({"kind": "gaussian", "mean": [0.5, -0.2], "cov": C}, InitialContext(coords)).values
    x = coords.cell_centers()
    mean = [coords.integrate(rho * x[..., k]) for k in range(2)]
    assert mean == pytest.approx([0.5, -0.2], abs=1e-3)
    cov = coords.integrate(rho * (x[..., 0] - mean[0]) * (x[..., 1] - mean[1]))
    assert cov == pytest.approx(0.6, abs=0.01)
    # a wide Gaussian wrapped on a torus is nearly uniform; the mass stays on the torus
    torus = cartesian([0, 1], 20, periodic=True)
    wrapped = initial_density({"kind": "gaussian", "mean": 0.5, "std": 3.0}, InitialContext(torus))
    assert wrapped.mass_on_grid == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(wrapped.values, 1.0, atol=1e-10)


def test_uniform_law():
    coords = cartesian([0, 4], 8)
    init = initial_density({"kind": "uniform", "bounds": [1.25, 2.75]}, InitialContext(coords))
    assert np.allclose(init.values, np.array([0, 0, 0.5, 1, 1, 0.5, 0, 0]) / 1.5)
    assert init.mass_on_grid == pytest.approx(1.0)
    # the shell a <= |theta| <= b in R^d: density of r proportional to r^(d-1), exact
    d = 320
    rad = radial(d, 2.0, 40)
    shell = initial_density({"kind": "uniform", "bounds": [0.5, 1.0]}, InitialContext(rad)).values
    e = rad.axes[0].edges
    a, b = np.clip(e[:-1], 0.5, 1.0), np.clip(e[1:], 0.5, 1.0)
    expected = (b**d - a**d) / (1.0 - 0.5**d) / rad.cell_volume
    assert np.allclose(shell, expected, rtol=1e-10, atol=1e-300)
    # default: the whole domain
    assert np.allclose(initial_density({"kind": "uniform"}, InitialContext(coords)).values, 0.25)


def test_mixture_law():
    coords = cartesian([-10, 10], 200)
    spec = resolve_initial({"kind": "mixture", "means": [-2, 2], "std": [0.5, 1.0], "weights": [3, 1]})
    rho = initial_density(spec, InitialContext(coords)).values
    x = coords.axes[0].centers
    assert coords.integrate(x * rho) == pytest.approx(0.75 * -2 + 0.25 * 2, abs=1e-6)
    with pytest.raises(ConfigError) as info:
        initial_density({**spec, "weights": [1.0]}, InitialContext(coords))
    assert info.value.key == "initial.weights"


@pytest.mark.parametrize("spec, key, fragment", [
    ({"kind": "expression", "expression": "x"}, "initial.expression", "negative"),
    ({"kind": "expression", "expression": "0"}, "initial.expression", "zero mass"),
    ({"kind": "expression", "expression": "log(x)"}, "initial.expression", "not finite"),
    ({"kind": "expression", "expression": "exp(-q**2)"}, "initial.expression", "unknown symbols"),
    ({"kind": "gaussian", "mean": 50.0}, "initial.mean", "lies on the grid"),
    ({"kind": "gaussian", "mean": [0, 1]}, "initial.mean", "single number"),
    ({"kind": "gaussian", "std": [1, 2]}, "initial.std", "single number"),
    ({"kind": "gaussian", "cov": [[1, 0], [0, 1]]}, "initial.cov", "shape"),
    ({"kind": "gaussian", "cov": -1.0}, "initial.cov", "positive definite"),
    ({"kind": "uniform", "bounds": [5, 6]}, "initial.bounds", "zero mass"),
    ({"kind": "uniform", "bounds": [[0, 1], [0, 1]]}, "initial.bounds", "pair"),
])
def test_initial_errors_name_keys(spec, key, fragment):
    coords = cartesian([-1, 1], 16)
    with pytest.raises(ConfigError) as info:
        initial_density(resolve_initial(spec), InitialContext(coords))
    assert info.value.key == key
    assert fragment in info.value.message


def test_initial_shape_mismatch_is_an_error():
    class Wrong(InitialKind):
        name = "wrong"
        main_key = "kind"

        def log_density(self, params, ctx):
            return np.zeros(ctx.coords.size + 1)

    with pytest.raises(ConfigError) as info:
        initial_density({"kind": "wrong"}, InitialContext(cartesian([0, 1], 4)), {"wrong": Wrong()})
    assert info.value.key == "initial.kind" and "shape" in info.value.message


def test_initial_expression_on_2d_and_charge_grids():
    coords = with_charge(cartesian([-1, 1], 10), (-2, 2), 8)
    rho = initial_density({"kind": "expression", "expression": "exp(-x**2 - c**2)"},
                          InitialContext(coords)).values
    assert rho.shape == (10, 8) and coords.integrate(rho) == pytest.approx(1.0)
    assert rho[5, 4] > rho[0, 0] > 0


def test_kuramoto_order_parameter_diagnostic():
    """order_x = |∫ e^{ix} rho| is 0 for the uniform law and I1(k)/I0(k) for von Mises."""
    from scipy.special import i0, i1

    prob = get_problem("kuramoto")
    params = prob.resolve({"kappa": 2.0})
    coords = cartesian([0, 2 * np.pi], 256, periodic=True)
    gm = GridModel(prob.build_model(params, coords), coords)
    x = coords.cell_centers()[..., 0]
    uniform = np.full(256, 1 / (2 * np.pi))
    assert prob.extra_diagnostics(params, gm, uniform)["order_x"] < 1e-14
    k = 1.7
    vm = np.exp(k * np.cos(x - 1.0))
    assert prob.extra_diagnostics(params, gm, vm)["order_x"] == pytest.approx(i1(k) / i0(k), rel=1e-10)
