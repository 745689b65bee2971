"""MF-Hom-SGLD (particles.hmm): homogenised limit on quadratics, Müller–Brown basins."""

import math

import numpy as np
import pytest

from ddsolve.model.base import Model
from ddsolve.model.potentials import MullerBrownPotential, QuadraticPotential
from particles.base import ParticleFailure
from particles.hmm import (
    GibbsSmoothedPotential,
    MFHomSGLD,
    _gradient_function,
    interacting_agents_model,
    smoothed_potential_gradient,
    smoothed_quadratic_potential,
)

MB_MINIMA = np.array([[-0.558, 1.442], [0.623, 0.028], [-0.050, 0.467]])  # deep, shallow, middle
MB_DEEP, MB_SHALLOW = 0, 1


def _quadratic_dynamics(a=4.0, gamma=0.5, beta=1.0, n=400, **kw):
    opts = dict(gamma=gamma, eps=0.01, lam=1.0, beta=beta, inner_steps=50, burn_in=5,
                inner_dt=2e-4, dt=0.01,
                initial=lambda rng, n: 1.0 + 0.3 * rng.standard_normal((n, 1)))
    opts.update(kw)
    return MFHomSGLD(QuadraticPotential(a), n, 1, **opts)


def _mean_path(d, steps, seed):
    rng = np.random.default_rng(seed)
    s = d.initial_state(rng)
    m = [s.x.mean(axis=0)]
    for _ in range(steps):
        d.advance(s, 1, rng)
        m.append(s.x.mean(axis=0))
    return s, np.array(m)


# ---------------------------------------------------------------------------------------
# exact smoothing of quadratics
# ---------------------------------------------------------------------------------------
def test_smoothed_quadratic_gradient_formula():
    a, g = 3.0, 0.7
    x = np.linspace(-2, 2, 9)
    assert np.allclose(smoothed_potential_gradient(x, a, g), a / (1 + a * g) * x)
    assert np.allclose(smoothed_potential_gradient(x, a, g, center=0.5), a / (1 + a * g) * (x - 0.5))
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    S = A @ np.linalg.inv(np.eye(2) + g * A)
    pts = np.random.default_rng(0).standard_normal((5, 2))
    assert np.allclose(smoothed_potential_gradient(pts, A, g), pts @ S.T)
    assert np.allclose(smoothed_potential_gradient(pts, [3.0, 2.0], g),
                       pts * np.array([3 / (1 + 3 * g), 2 / (1 + 2 * g)]))
    P = smoothed_quadratic_potential(A, g, center=[1.0, -1.0])
    assert np.allclose(P.gradient(pts), (pts - [1.0, -1.0]) @ S.T)
    assert np.allclose(smoothed_quadratic_potential(a, g).gradient(pts), a / (1 + a * g) * pts)
    with pytest.raises(ValueError, match="gamma"):
        smoothed_potential_gradient(x, a, 0.0)
    with pytest.raises(ValueError, match="positive"):
        smoothed_potential_gradient(x, -2.0, 1.0)


@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_gibbs_smoothing_of_quadratic_is_exact_and_beta_free(beta):
    """Quadrature of -1/beta log(G_{gamma/beta} * exp(-beta Phi)) against A/(1+gamma A)."""
    a, g = 2.0, 0.8
    S = GibbsSmoothedPotential(QuadraticPotential(a), beta, g, [-12.0], [12.0], 4000)
    x = np.linspace(-1.5, 1.5, 7)[:, None]
    k = a / (1 + a * g)
    assert np.allclose(S.gradient(x)[:, 0], k * x[:, 0], atol=1e-8)
    v = S(x)
    assert np.allclose(v - v[3], 0.5 * k * x[:, 0] ** 2, atol=1e-8)
    assert np.allclose(S.fast_mean(x)[:, 0], x[:, 0] / (1 + a * g), atol=1e-8)


def test_moreau_envelope_limit():
    S = GibbsSmoothedPotential(QuadraticPotential(2.0), math.inf, 0.5, [-3.0], [3.0], 6001)
    x = np.array([[1.0], [-0.4]])
    assert np.allclose(S.gradient(x)[:, 0], 2.0 / 2.0 * x[:, 0], atol=2e-3)


# ---------------------------------------------------------------------------------------
# the HMM on quadratics: the slow mean decays at a/(1 + a gamma), not a
# ---------------------------------------------------------------------------------------
def test_quadratic_mean_decays_at_homogenised_rate():
    a, gamma = 4.0, 0.5
    d = _quadratic_dynamics(a, gamma, beta=1.0)
    _, m = _mean_path(d, 150, seed=3)
    t = d.dt * np.arange(m.shape[0])
    rate = -np.polyfit(t, np.log(m[:, 0] / m[0, 0]), 1)[0]
    k = a / (1 + a * gamma)                       # 4/3; ignoring gamma would give 4
    assert rate == pytest.approx(k, rel=0.05)
    assert abs(rate - a) > 2.0
    # the noiseless fast chain (beta = inf) reproduces the explicit Euler macro scheme; the
    # warm-start lag of the fast chain (0.4% at T = 1.5 without burn-in) decays with burn_in
    errors = []
    for burn_in in (0, 60):
        d = _quadratic_dynamics(a, gamma, beta=math.inf, burn_in=burn_in)
        _, m = _mean_path(d, 150, seed=3)
        errors.append(abs(m[-1, 0] / (m[0, 0] * (1 - d.dt * k) ** 150) - 1))
    assert errors[1] < 1e-5 and errors[0] < 1e-2


def test_quadratic_2d_matrix_with_centre_and_coupling():
    """Anisotropic Phi = (y-c)^T A (y-c)/2: the mean follows (I - dt S)^n (m0 - c) + c with
    S = A (I + gamma A)^{-1}; the Curie-Weiss term does not move the mean."""
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    c = np.array([0.5, -0.5])
    gamma = 0.4
    d = MFHomSGLD(QuadraticPotential(A, c), 300, gamma=gamma, eps=1.0, lam=2.0, beta=4.0,
                  inner_steps=40, burn_in=5, inner_dt=0.02, dt=0.02,
                  initial=lambda rng, n: rng.normal([2.0, 1.0], 0.3, (n, 2)))
    s, m = _mean_path(d, 60, seed=11)
    S = A @ np.linalg.inv(np.eye(2) + gamma * A)
    pred = np.linalg.matrix_power(np.eye(2) - d.dt * S, 60) @ (m[0] - c) + c
    assert np.allclose(m[-1], pred, atol=0.02)
    unsmoothed = np.linalg.matrix_power(np.eye(2) - d.dt * A, 60) @ (m[0] - c) + c
    assert np.abs(m[-1] - unsmoothed).max() > 0.2
    assert s.x.shape == (300, 2) and d.names == ("x", "y")


# ---------------------------------------------------------------------------------------
# Müller–Brown: smoothing at the level of the Gibbs measure finds the deep basin
# ---------------------------------------------------------------------------------------
def _basins(x, V=MullerBrownPotential()):
    """Index into MB_MINIMA of the minimum plain gradient descent from x reaches."""
    z = np.array(x, dtype=float)
    for _ in range(4000):
        z = z - 2e-4 * V.gradient(z)
    d2 = ((z[:, None, :] - MB_MINIMA[None]) ** 2).sum(-1)
    assert d2.min(axis=1).max() < 1e-4
    return d2.argmin(axis=1)


def _mb_run(gamma, dt, T, seed, n=100):
    V = MullerBrownPotential()
    d = MFHomSGLD(V, n, gamma=gamma, eps=0.01, lam=3.0, beta=0.05, inner_steps=100,
                  inner_dt=1e-6, dt=dt,
                  initial=lambda rng, n: MB_MINIMA[MB_SHALLOW] + 0.02 * rng.standard_normal((n, 2)))
    rng = np.random.default_rng(seed)
    s = d.initial_state(rng)
    assert np.all(_basins(s.x) == MB_SHALLOW)
    d.advance(s, int(round(T / dt)), rng)
    return d, s


def test_muller_brown_minima_match_seed_summary():
    V = MullerBrownPotential()
    assert np.abs(V.gradient(MB_MINIMA)).max() < 1.0          # (rounded coordinates)
    assert V(MB_MINIMA[MB_DEEP]) == pytest.approx(-146.70, abs=0.01)
    assert V(MB_MINIMA[MB_SHALLOW]) == pytest.approx(-108.17, abs=0.01)
    assert V(MB_MINIMA[2]) == pytest.approx(-80.77, abs=0.01)
    x = np.random.default_rng(1).uniform(-1.5, 1.0, (50, 2))
    assert np.allclose(_gradient_function(V)(x), V.gradient(x), rtol=1e-12, atol=1e-9)
    assert np.allclose(_gradient_function(MullerBrownPotential(0.3))(x),
                       MullerBrownPotential(0.3).gradient(x), rtol=1e-12, atol=1e-9)


def test_muller_brown_smoothed_landscape_favours_deep_basin():
    """beta = 0.05, gamma = 0.05: the homogenised flow from the shallow minimum ends in the
    deep basin (grid quadrature of Phi^{beta,gamma})."""
    S = GibbsSmoothedPotential(MullerBrownPotential(), 0.05, 0.05, [-2.5, -1.0], [1.5, 2.8], 160)
    v = S(MB_MINIMA)
    assert v[MB_DEEP] < v[MB_SHALLOW] - 10
    x = MB_MINIMA[MB_SHALLOW].copy()
    for _ in range(1500):
        x = x - 0.002 * S.gradient(x)
    assert _basins(x[None])[0] == MB_DEEP


def test_muller_brown_agents_escape_shallow_minimum():
    d, s = _mb_run(gamma=0.05, dt=0.01, T=2.0, seed=0)
    frac = np.bincount(_basins(s.x), minlength=3) / d.n
    assert frac[MB_DEEP] > 0.6          # measured 0.88 (0.76-0.88 over seeds 0-5)
    assert frac[MB_SHALLOW] < 0.2
    diag = d.diagnostics(s)
    assert set(diag) == {"energy", "fast_energy", "smoothed_grad_norm", "spread"}
    assert diag["energy"] < -120 and all(np.isfinite(list(diag.values())))
    assert s.step == 200 and s.extra["fast"].shape == (100, 2)


def test_muller_brown_small_gamma_stays_in_shallow_basin():
    """Control: gamma -> 0 gives Phi^{beta,gamma} -> Phi; the same temperature no longer helps."""
    d, s = _mb_run(gamma=0.002, dt=0.001, T=0.2, seed=0)
    assert np.all(_basins(s.x) == MB_SHALLOW)


# ---------------------------------------------------------------------------------------
# interface, reproducibility, errors
# ---------------------------------------------------------------------------------------
def test_reproducible_and_chunk_independent():
    d = _quadratic_dynamics(n=20, inner_steps=7, burn_in=2)
    runs = []
    for chunks in ([6], [1, 2, 3]):
        rng = np.random.default_rng(42)
        s = d.initial_state(rng)
        for c in chunks:
            d.advance(s, c, rng)
        runs.append((s.x.copy(), s.extra["fast"].copy(), s.step))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2] == 6
    rng = np.random.default_rng(43)
    s = d.initial_state(rng)
    d.advance(s, 6, rng)
    assert not np.array_equal(s.x, runs[0][0])


def test_array_initial_and_interface():
    x0 = np.linspace(-1, 1, 10)
    d = MFHomSGLD(QuadraticPotential(1.0), 10, 1, gamma=1.0, eps=0.1, beta=2.0, inner_steps=5,
                  inner_dt=0.01, dt=0.1, initial=x0)
    s = d.initial_state(np.random.default_rng(0))
    assert s.x.shape == (10, 1) and np.allclose(s.x[:, 0], x0)
    assert np.array_equal(s.extra["fast"], s.x)
    assert d.coordinates(s) is s.x and d.vectors(s) is None and d.names == ("x",)
    info = d.describe()
    assert info["method"] == "mf-hom-sgld" and info["gamma"] == 1.0 and info["dt"] == 0.1
    d.advance(s, 0, np.random.default_rng(0))
    assert s.step == 0


def test_parameter_errors():
    V = QuadraticPotential(1.0)
    base = dict(gamma=1.0, eps=0.1, lam=0.5, beta=1.0, inner_steps=5, burn_in=0, inner_dt=0.01,
                dt=0.1, initial=np.zeros((4, 1)))
    for key, bad in [("gamma", 0.0), ("gamma", -1.0), ("eps", 0.0), ("eps", math.inf),
                     ("lam", -1.0), ("lam", math.nan), ("beta", 0.0), ("beta", -2.0),
                     ("inner_steps", 0), ("inner_steps", 2.5), ("burn_in", -1),
                     ("inner_dt", 0.0), ("dt", -0.1)]:
        with pytest.raises(ValueError, match=key):
            MFHomSGLD(V, 4, 1, **{**base, key: bad})
    with pytest.raises(ValueError, match="n must"):
        MFHomSGLD(V, 0, 1, **base)
    with pytest.raises(ValueError, match="dim"):
        MFHomSGLD(V, 4, **base)                                # no fixed dimension
    with pytest.raises(ValueError, match="dim"):
        MFHomSGLD(MullerBrownPotential(), 4, 1, **base)
    with pytest.raises(ValueError, match="shape"):
        MFHomSGLD(V, 4, 1, **{**base, "initial": np.zeros((3, 1))})
    with pytest.raises(ValueError, match="stable fast chain"):
        MFHomSGLD(V, 4, 1, **{**base, "inner_dt": 0.3})       # inner_dt/eps = 3 > 2*gamma
    with pytest.raises(ValueError, match="stable macro step"):
        MFHomSGLD(V, 4, 1, **{**base, "dt": 1.5})
    with pytest.raises(ValueError, match="gradient"):
        MFHomSGLD(object(), 4, 1, **base)
    d = MFHomSGLD(V, 4, 1, **{**base, "initial": lambda rng, n: np.zeros((n, 2))})
    with pytest.raises(ValueError, match="shape"):
        d.initial_state(np.random.default_rng(0))


def test_blow_up_raises_particle_failure():
    steep = QuadraticPotential(1e3)                   # inner_dt/eps * 1e3 = 10: unstable
    d = MFHomSGLD(steep, 3, 1, gamma=1.0, eps=1.0, beta=math.inf, inner_steps=400,
                  inner_dt=0.01, dt=0.1, initial=np.ones(3))
    s = d.initial_state(np.random.default_rng(0))
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ParticleFailure) as info:
            d.advance(s, 5, np.random.default_rng(0))
    assert info.value.t == 0.0 and s.step == 0


def test_interacting_agents_model():
    V = MullerBrownPotential()
    model = interacting_agents_model(V, lam=2.0, beta=0.5)
    assert isinstance(model, Model)
    assert model.ndim == 2 and model.beta == 0.5 and model.temperature == 2.0
    assert model.potential is V and model.interaction.theta == 2.0
    x = np.random.default_rng(0).uniform(-1, 1, (7, 2))
    expected = -V.gradient(x) - 2.0 * (x - x.mean(axis=0))
    assert np.allclose(model.drift(x), expected)
    m1 = interacting_agents_model(QuadraticPotential(1.0), 0.0, math.inf, ndim=3)
    assert m1.ndim == 3 and m1.temperature == 0.0
    with pytest.raises(ValueError, match="ndim"):
        interacting_agents_model(QuadraticPotential(1.0), 1.0, 1.0)
    with pytest.raises(ValueError, match="lam"):
        interacting_agents_model(V, -1.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        interacting_agents_model(V, 1.0, 0.0)
