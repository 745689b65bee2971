"""Mean-field particle system of a ddsolve Model: moments against exact laws, forces
against each other, radial representations, integrator orders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddsolve.laws.exact import ou_moments
from ddsolve.model.base import Model
from ddsolve.model.kernels import (
    AttractiveRepulsiveKernel,
    ConvolutionExpressionKernel,
    CosineKernel,
    ExpressionKernel,
    GaussianKernel,
    QuadraticKernel,
)
from ddsolve.model.potentials import DoubleWellPotential, MullerBrownPotential, QuadraticPotential
from particles.base import ParticleFailure
from particles.forces import make_force
from particles.meanfield import MeanFieldParticles
from tests.helpers import observed_orders


def _run(p, steps, seed=0):
    rng = np.random.default_rng(seed)
    state = p.initial_state(rng)
    p.advance(state, steps, rng)
    return state


def _gauss(mean, std, dim=1):
    return lambda rng, n: mean + std * rng.standard_normal((n, dim))


# --- exact laws ------------------------------------------------------------------
def test_ou_euler_maruyama_moments_match_the_exact_discrete_recursion():
    """For V = a x^2/2 Euler-Maruyama is the linear recursion x' = (1 - a dt) x + s g, so
    mean and variance after k steps are known exactly; 2e5 particles must agree within
    5 standard errors, and the continuum moments differ by O(dt)."""
    a, beta, dt, k, n = 1.5, 2.0, 0.02, 50, 200_000
    p = MeanFieldParticles(Model(QuadraticPotential(a), beta=beta), n, dt, _gauss(1.0, 0.5))
    x = _run(p, k).x[:, 0]
    q = 1 - a * dt
    mean = q**k * 1.0
    var = q ** (2 * k) * 0.25 + (2 * dt / beta) * (1 - q ** (2 * k)) / (1 - q**2)
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n)
    m_exact, S_exact = ou_moments(a, [1.0], [[0.25]], k * dt, beta)
    assert abs(mean - m_exact[0]) < 0.03  # the O(dt) bias the recursion carries


def test_ou_2d_covariance_with_nondiagonal_stiffness():
    A = np.array([[2.0, 0.6], [0.6, 1.0]])
    beta, dt, k, n = 1.0, 0.005, 200, 100_000
    p = MeanFieldParticles(Model(QuadraticPotential(A), beta=beta, ndim=2), n, dt,
                           lambda rng, n: np.array([1.0, -1.0]) + 0.3 * rng.standard_normal((n, 2)),
                           integrator="heun")
    x = _run(p, k, seed=3).x
    m, S = ou_moments(A, [1.0, -1.0], 0.09 * np.eye(2), k * dt, beta)
    assert np.all(np.abs(x.mean(axis=0) - m) < 5 * np.sqrt(np.diag(S) / n) + 2e-3)
    assert np.allclose(np.cov(x.T), S, atol=5 * np.sqrt(2 / n) * S.max() + 2e-3)


def test_curie_weiss_quadratic_gaussian_moments():
    """V = a x^2/2, U = theta |x-y|^2/2: the mean decays at rate a, the variance solves
    v' = -2(a + theta) v + 2/beta (the mean-field Gaussian solution, Dawson 1983)."""
    a, theta, beta, dt, k, n = 0.5, 2.0, 4.0, 0.002, 500, 100_000
    model = Model(QuadraticPotential(a), QuadraticKernel(theta), beta=beta)
    p = MeanFieldParticles(model, n, dt, _gauss(1.0, 1.0), integrator="heun")
    assert p.force.method == "mean"
    x = _run(p, k, seed=1).x[:, 0]
    t, lam = k * dt, a + theta
    mean = math.exp(-a * t)
    var = math.exp(-2 * lam * t) * 1.0 + (1 - math.exp(-2 * lam * t)) / (beta * lam)
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n) + 1e-3
    assert abs(x.var() - var) < 5 * var * math.sqrt(2 / n) + 1e-3
    # the mean-field energy of particles: E = a m2/2 + theta var/2
    s = p.initial_state(np.random.default_rng(0))
    y = s.x[:, 0]
    assert p.energy(s) == pytest.approx(a * np.mean(y**2) / 2 + theta * y.var() / 2, rel=1e-12)


@pytest.mark.parametrize("mode", ["vector", "radius"])
def test_radial_ou_stationary_second_moment(mode):
    """Radial OU in R^d: the law of |w| relaxes to r^(d-1) exp(-beta r^2/2), E r^2 = d/beta.
    The vector representation and the chi-square radius step have the same law."""
    d, beta, n, dt = 6, 2.0, 10_000, 0.01
    model = Model(QuadraticPotential(1.0), beta=beta, radial_dim=d)
    p = MeanFieldParticles(model, n, dt, lambda rng, n: np.full((n, 1), 0.1), radial=mode)
    r = p.coordinates(_run(p, 600, seed=2))[:, 0]  # t = 6
    target = (d / beta) * (1 - math.exp(-12)) + 0.01 * math.exp(-12)
    # EM's stationary variance per coordinate is 1/(beta (1 - dt/2))
    target /= 1 - dt / 2
    assert abs(np.mean(r**2) - target) < 5 * math.sqrt(2 * d) / beta / math.sqrt(n)
    assert np.all(r >= 0)
    if mode == "vector":
        assert p.vectors(p.initial_state(np.random.default_rng(0))).shape == (n, d)


# --- forces ----------------------------------------------------------------------
@pytest.mark.parametrize("kernel", [GaussianKernel(-1.0, 0.7), AttractiveRepulsiveKernel(2.0, 1.0),
                                    QuadraticKernel(1.3)])
@pytest.mark.parametrize("dim", [1, 2])
def test_pairwise_equals_generic_and_model_drift(kernel, dim):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, dim))
    pw, gen = make_force(kernel, "pairwise", period=np.zeros(dim)), make_force(kernel, "generic",
                                                                               period=np.zeros(dim))
    assert np.allclose(pw.gradient(x), gen.gradient(x), atol=1e-12)
    assert pw.energy(x) == pytest.approx(gen.energy(x), rel=1e-12)
    model = Model(interaction=kernel, ndim=dim)
    assert np.allclose(-gen.gradient(x), model.drift(x), atol=1e-12)
    assert gen.energy(x) == pytest.approx(model.energy_particles(x), rel=1e-12)


def test_mean_forces_are_exact():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 2))
    q = QuadraticKernel(0.8)
    assert np.allclose(make_force(q, "mean").gradient(x), make_force(q, "generic").gradient(x), atol=1e-12)
    assert make_force(q, "mean").energy(x) == pytest.approx(make_force(q, "generic").energy(x), rel=1e-12)
    L = 2 * math.pi
    c = CosineKernel(1.7, length=L)
    y = rng.uniform(0, L, (400, 1))
    per = np.array([L])
    mean, pair = make_force(c, "auto", period=per), make_force(c, "pairwise", period=per)
    assert mean.method == "mean"
    assert np.allclose(mean.gradient(y), pair.gradient(y), atol=1e-12)
    assert mean.energy(y) == pytest.approx(pair.energy(y), rel=1e-12)


def test_periodic_minimal_image():
    """On a torus of length 4 the Gaussian interaction of points 0.1 and 3.9 is that of
    points 0.2 apart."""
    k = GaussianKernel(-1.0, 0.3)
    x = np.array([[0.1], [3.9]])
    for method in ("pairwise", "generic"):
        g = make_force(k, method, period=np.array([4.0])).gradient(x)
        expected = 0.5 * k.W_gradient(np.array([[0.2]]))[0, 0]
        assert g[0, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("periodic", [False, True])
def test_mesh_force_converges_at_second_order(periodic):
    k = GaussianKernel(-1.0, 0.5)
    rng = np.random.default_rng(6)
    lo, hi = (-3.0, 3.0)
    x = np.clip(0.7 * rng.standard_normal((2000, 1)), lo + 0.6, hi - 0.6)
    exact = make_force(k, "generic", period=np.array([hi - lo if periodic else 0.0])).gradient(x)
    errs = []
    cells = [64, 128, 256]
    for m in cells:
        f = make_force(k, "mesh", lower=[lo], upper=[hi], periodic=[periodic], cells=m,
                       period=np.array([hi - lo if periodic else 0.0]))
        errs.append(np.abs(f.gradient(x) - exact).max())
    orders = observed_orders([(hi - lo) / m for m in cells], errs)
    assert min(orders) > 1.8, (errs, orders)
    assert errs[-1] < 1e-3


def test_expression_kernels_use_the_generic_path():
    k = ExpressionKernel("exp(-(x - y)**2) * (1 + x*y)")
    assert make_force(k).method == "generic"
    w = ConvolutionExpressionKernel("z**2/2 - abs(z)")
    x = np.random.default_rng(7).standard_normal((50, 1))
    assert np.allclose(make_force(w, "generic").gradient(x),
                       make_force(AttractiveRepulsiveKernel(), "pairwise").gradient(x), atol=1e-12)


def test_force_errors_name_the_choice():
    with pytest.raises(ValueError, match="interaction method must be one of"):
        make_force(GaussianKernel(), "fast")
    with pytest.raises(ValueError, match="exact only for"):
        make_force(GaussianKernel(), "mean")
    with pytest.raises(ValueError, match="feature map and its gradients"):
        make_force(GaussianKernel(), "features")
    with pytest.raises(ValueError, match="compiled loops"):
        make_force(ExpressionKernel("x*y"), "pairwise")


# --- integrators, walls, failures ------------------------------------------------------
def test_heun_is_second_order_and_euler_first_order_without_noise():
    """beta = inf, double well from x0 = 0.3: error at t = 1 against a fine Heun run."""
    model = Model(DoubleWellPotential(), beta=math.inf)
    x0 = np.array([[0.3], [-1.7], [2.0]])

    def final(integrator, dt):
        p = MeanFieldParticles(model, 3, dt, x0, integrator=integrator)
        return _run(p, int(round(1.0 / dt))).x[:, 0]

    ref = final("heun", 1e-4)
    dts = [0.04, 0.02, 0.01]
    for integrator, order in (("euler-maruyama", 1.0), ("heun", 2.0)):
        errs = [np.abs(final(integrator, dt) - ref).max() for dt in dts]
        assert np.all(np.abs(np.array(observed_orders(dts, errs)) - order) < 0.15), (integrator, errs)


def test_walls_reflect_and_periodic_axes_wrap():
    model = Model(QuadraticPotential(0.0), beta=1.0, ndim=2)
    p = MeanFieldParticles(model, 5000, 0.05, lambda rng, n: rng.uniform(0, 1, (n, 2)),
                           lower=[0.0, 0.0], upper=[1.0, 1.0], periodic=[False, True])
    x = _run(p, 100).x
    assert np.all((x >= 0) & (x <= 1))
    # pure diffusion in a reflecting / periodic box keeps the uniform law
    assert abs(x[:, 0].mean() - 0.5) < 5 * math.sqrt(1 / 12 / 5000)


def test_blow_up_raises_particle_failure():
    model = Model(DoubleWellPotential(), beta=math.inf)
    p = MeanFieldParticles(model, 4, 0.5, np.full((4, 1), 10.0))
    with pytest.raises(ParticleFailure, match="reduce dt"), np.errstate(over="ignore", invalid="ignore"):
        _run(p, 20)


def test_bad_arguments_are_named():
    model = Model(QuadraticPotential(1.0))
    with pytest.raises(ValueError, match="n \\(number of particles\\)"):
        MeanFieldParticles(model, 0, 0.1, np.zeros((1, 1)))
    with pytest.raises(ValueError, match="dt must be"):
        MeanFieldParticles(model, 2, -1.0, np.zeros((2, 1)))
    with pytest.raises(ValueError, match="integrator must be one of"):
        MeanFieldParticles(model, 2, 0.1, np.zeros((2, 1)), integrator="rk4")
    with pytest.raises(ValueError, match="initial particles must have shape"):
        MeanFieldParticles(model, 2, 0.1, np.zeros((3, 1))).initial_state(np.random.default_rng(0))


def test_interacting_agents_find_the_global_muller_brown_basin():
    """Kantas-Parpas-Pavliotis agents dX = -grad Phi dt - lam (X - mean) dt + sqrt(2/beta) dB
    (the mean-field system of V = Phi, U = lam |x - y|^2 / 2), started in the shallow
    basin around (0.62, 0.03): at temperature 1/beta = 12 the majority end, after
    gradient descent from their final positions, in the global minimum at (-0.56, 1.44)."""
    phi = MullerBrownPotential()
    model = Model(phi, QuadraticKernel(5.0), beta=1 / 12.0, ndim=2)
    start = np.array([0.62, 0.03])
    p = MeanFieldParticles(model, 200, 2e-4, lambda rng, n: start + 0.02 * rng.standard_normal((n, 2)))
    x = _run(p, 15_000, seed=8).x
    for _ in range(4000):  # quench to the nearest minimum
        x = x - 1e-4 * phi.gradient(x)
    deep = np.linalg.norm(x - np.array([-0.558, 1.442]), axis=1) < 0.05
    assert deep.mean() > 0.5, deep.mean()


def test_feature_force_of_reduced_two_layer_kernels_is_exact():
    """The O(N T) force from the reduced kernel's features equals the O(N^2) sum of
    gradient1 over all pairs, and the energies agree (isotropic, d = 40, non-monotone)."""
    from ddsolve.app.config import resolve_model
    from ddsolve.networks.reduction import ReducedKernel
    from ddsolve.problems.two_layer import build_reduction

    _, params = resolve_model({"problem": "two-layer", "dim": 40, "activation": "mmn-nonmonotone"})
    kernel = ReducedKernel(build_reduction({k: v for k, v in params.items() if k != "problem"}))
    r = np.random.default_rng(9).uniform(0.1, 3.0, (120, 1))
    feat, gen = make_force(kernel, "auto"), make_force(kernel, "generic")
    assert feat.method == "features"
    g = gen.gradient(r)
    assert np.allclose(feat.gradient(r), g, rtol=1e-9, atol=1e-9 * np.abs(g).max())
    assert feat.energy(r) == pytest.approx(gen.energy(r), rel=1e-9)
