"""particles.charges: RVE's RBF network with charges on the spherical 3-spin target."""

import math

import numpy as np
import pytest
from scipy.special import hyp0f1

from particles.base import ParticleFailure
from particles.charges import (
    RBFCharges,
    SphereMGFTable,
    ThreeSpinTarget,
    sample_sphere,
    sphere_mgf,
)

MC = 120_000


def _mc_mean(samples):
    """Mean and standard error along axis 0."""
    return samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])


def _points(d, seed, m=3, spread=0.6):
    rng = np.random.default_rng(seed)
    y = sample_sphere(m, d, rng) * (1 + spread * (rng.random((m, 1)) - 0.5))
    return y


@pytest.mark.parametrize("mu", [-0.5, 0.0, 1.5, 4.0, 11.5])
def test_sphere_mgf_and_table(mu):
    a = np.concatenate([np.linspace(0, 40, 401), [1e-12, 1e-6]])
    ref = hyp0f1(mu + 1, a * a / 4) * np.exp(-a)
    np.testing.assert_allclose(sphere_mgf(mu, a), ref, rtol=1e-12, atol=0)
    table = SphereMGFTable(mu, a_max=5.0)          # grows itself past a_max
    b = a + 0.00123
    np.testing.assert_allclose(table(b), sphere_mgf(mu, b), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 10])
def test_K_bessel_formula_vs_monte_carlo(d):
    m = RBFCharges(4, d=d, holdout=10)
    y = _points(d, 1)
    x = sample_sphere(MC, d, np.random.default_rng(2))
    phi = m.phi(x, y)
    samples = phi[:, :, None] * phi[:, None, :]
    mean, se = _mc_mean(samples)
    K = m.K(y)
    assert np.all(np.abs(K - mean) <= 5 * se + 1e-15), (K, mean, se)
    np.testing.assert_allclose(m.K(y, exact=True), K, rtol=1e-10)
    np.testing.assert_allclose(K, K.T, rtol=1e-14)
    assert np.all(K <= 1.0)
    if d == 1:   # sphere {-1, 1}: K = mean over x = +-1
        ref = 0.5 * (np.exp(-0.5 * m.kappa * ((1 - y) ** 2 + (1 - y.T) ** 2))
                     + np.exp(-0.5 * m.kappa * ((1 + y) ** 2 + (1 + y.T) ** 2)))
        np.testing.assert_allclose(K, ref, rtol=1e-12)


def test_mean_phi_vs_monte_carlo():
    m = RBFCharges(4, d=5, holdout=10)
    x = sample_sphere(MC, 5, np.random.default_rng(11))
    for r in (1.0, math.sqrt(5), 3.0):
        mean, se = _mc_mean(m.phi(x, np.array([[r, 0, 0, 0, 0.0]]))[:, 0])
        assert abs(m.mean_phi(r) - mean) <= 5 * se
    assert m.mean_phi() == pytest.approx(m.mean_phi(math.sqrt(5)))


@pytest.mark.parametrize("d", [3, 5])
def test_F_closed_form_vs_monte_carlo(d):
    m = RBFCharges(4, d=d, holdout=10)
    y = _points(d, 3, m=4)
    x, fx = m.target.sample(MC, np.random.default_rng(4))
    mean, se = _mc_mean(fx[:, None] * m.phi(x, y))
    assert np.all(np.abs(m.F(y) - mean) <= 5 * se), (m.F(y), mean, se)


@pytest.mark.parametrize("d", [2, 5])
def test_gradients_of_F_and_K_match_finite_differences(d):
    m = RBFCharges(4, d=d, holdout=10)
    y, y2 = _points(d, 5, m=2), _points(d, 6, m=2)
    _, dF = m.F(y, grad=True)
    dK = m.grad_K(y, y2)
    h = 1e-6
    for q in range(d):
        e = np.zeros(d)
        e[q] = h
        np.testing.assert_allclose((m.F(y + e) - m.F(y - e)) / (2 * h), dF[:, q],
                                   rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose((m.K(y + e, y2) - m.K(y - e, y2)) / (2 * h), dK[:, :, q],
                                   rtol=1e-6, atol=1e-10)


def test_three_spin_target():
    d = 5
    f = ThreeSpinTarget(d, np.random.default_rng(7))
    x = sample_sphere(MC, d, np.random.default_rng(8))
    fx = f(x)
    np.testing.assert_allclose(f(-x), -fx, rtol=1e-13)
    # vectorised einsum vs the triple sum at one point, and the symmetrised tensor
    p = x[0]
    ref = sum(f.a[i, j, k] * p[i] * p[j] * p[k]
              for i in range(d) for j in range(d) for k in range(d)) / d
    assert f(p) == pytest.approx(ref, rel=1e-12)
    assert np.einsum("pqr,p,q,r->", f.S, p, p, p) / d == pytest.approx(ref, rel=1e-12)
    assert np.allclose(np.linalg.norm(x, axis=1), math.sqrt(d))
    mean, se = _mc_mean(fx)
    assert abs(mean) <= 5 * se
    m2, se2 = _mc_mean(fx ** 2)
    assert abs(m2 - f.second_moment()) <= 5 * se2
    # over the disorder, E_a E_x f^2 = d (|x|^6 = d^3)
    moments = np.array([ThreeSpinTarget(d, s).second_moment() for s in range(400)])
    mean_a, se_a = _mc_mean(moments)
    assert abs(mean_a - d) <= 5 * se_a
    # sample() returns labelled points, reproducibly
    xs, ys = f.sample(10, 3)
    xs2, ys2 = f.sample(10, np.random.default_rng(3))
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_allclose(ys, f(xs))


def _state(m, seed=0, c_std=2.0, radial=0.3):
    rng = np.random.default_rng(seed)
    x = m.initial_state(rng).x
    x[:, : m.d] *= 1 + radial * (rng.random((m.n, 1)) - 0.5)
    x[:, m.d] = c_std * rng.standard_normal(m.n)
    return x


def _fd_gradient(fun, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def test_exact_velocity_is_minus_n_gradient_of_the_loss():
    m = RBFCharges(7, d=4, charge_rate=1.0, holdout=10)
    x = _state(m)
    g = _fd_gradient(m.loss_exact, x)
    v = m.velocity(x)
    np.testing.assert_allclose(v, -m.n * g, rtol=1e-6, atol=1e-9 * np.abs(v).max())
    # charge_rate only scales the charge column
    m3 = RBFCharges(7, d=4, charge_rate=3.0, holdout=10)
    v3 = m3.velocity(x)
    np.testing.assert_allclose(v3[:, :4], v[:, :4], rtol=1e-13)
    np.testing.assert_allclose(v3[:, 4], 3 * v[:, 4], rtol=1e-13)
    # exact loss vs a large sample
    X, fX = m.target.sample(MC, np.random.default_rng(9))
    r2 = 0.5 * (fX - m.network(x, X)) ** 2
    mean, se = _mc_mean(r2)
    assert abs(m.loss_exact(x) - mean) <= 5 * se


def test_sample_velocity_is_minus_n_gradient_of_the_empirical_loss():
    m = RBFCharges(6, d=3, holdout=10)
    x = _state(m, seed=1)
    X, fX = m.target.sample(50, np.random.default_rng(10))
    g = _fd_gradient(lambda z: m.loss_sample(z, X, fX), x)
    v = m.sample_velocity(x, X, fX)
    np.testing.assert_allclose(v, -m.n * g, rtol=1e-6, atol=1e-9 * np.abs(v).max())
    # the brief's per-unit SGD formula, written out
    y, c = x[:, :3], x[:, 3]
    r = fX - m.network(x, X)
    for i in range(m.n):
        ph = np.exp(-0.5 * m.kappa * np.sum((X - y[i]) ** 2, 1))
        dy = c[i] * np.mean(r[:, None] * m.kappa * (X - y[i]) * ph[:, None], 0)
        np.testing.assert_allclose(v[i, :3], dy, rtol=1e-10, atol=1e-14)
        assert v[i, 3] == pytest.approx(np.mean(r * ph), rel=1e-10)


def test_sgd_step_with_the_full_fixed_sample_is_the_gradient_step():
    P, seed = 300, 77
    gf = RBFCharges(10, d=4, dt=0.3, quadrature=P, quadrature_seed=seed, holdout=10)
    sgd = RBFCharges(10, d=4, dt=0.3, method="sgd", batch=P, holdout=10)
    s1 = gf.initial_state(np.random.default_rng(0))
    s1.x[:, -1] = 1.5
    s2 = sgd.initial_state(np.random.default_rng(0))
    s2.x[:, -1] = 1.5
    x0 = s1.x.copy()
    gf.advance(s1, 1, None)
    sgd.advance(s2, 1, np.random.default_rng(seed))
    np.testing.assert_allclose(s2.x, s1.x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s1.x, x0 + 0.3 * gf.sample_velocity(x0, gf.x_quad, gf.f_quad),
                               rtol=1e-13)
    assert s1.step == s2.step == 1


def test_loss_decreases_along_the_gradient_flow():
    m = RBFCharges(16, d=4, dt=0.05, c_std=1.0, holdout=10)
    st = m.initial_state(np.random.default_rng(3))
    losses = [m.loss_exact(st.x)]
    for _ in range(60):
        m.advance(st, 5, None)
        losses.append(m.diagnostics(st)["energy"])
    assert np.all(np.diff(losses) < 0)
    assert losses[-1] < losses[0] - 1e-3
    assert st.step == 300
    # the fixed-sample flow descends its own (empirical) loss
    q = RBFCharges(16, d=4, dt=0.05, c_std=1.0, quadrature=400, holdout=10)
    st = q.initial_state(np.random.default_rng(3))
    emp = [q.loss_sample(st.x, q.x_quad, q.f_quad)]
    for _ in range(30):
        q.advance(st, 5, None)
        emp.append(q.loss_sample(st.x, q.x_quad, q.f_quad))
    assert np.all(np.diff(emp) < 0)


def test_reproducible_and_seeded():
    def run(target_seed=0, rng_seed=5):
        m = RBFCharges(12, d=3, dt=0.1, method="sgd", batch=20, c_std=0.5,
                       target_seed=target_seed, holdout=50)
        st = m.initial_state(np.random.default_rng(rng_seed))
        m.advance(st, 20, np.random.default_rng(rng_seed + 1))
        return st.x, m.diagnostics(st)

    x1, d1 = run()
    x2, d2 = run()
    np.testing.assert_array_equal(x1, x2)
    assert d1 == d2
    assert not np.array_equal(run(rng_seed=6)[0], x1)
    assert not np.array_equal(run(target_seed=1)[0], x1)
    np.testing.assert_array_equal(ThreeSpinTarget(4, 3).a, ThreeSpinTarget(4, 3).a)


def test_interface_and_initial_laws():
    m = RBFCharges(20, d=5, c_std=0.0, holdout=500)
    assert m.kappa == pytest.approx(1.0)               # 5/d
    st = m.initial_state(np.random.default_rng(0))
    assert st.x.shape == (20, 6) and st.step == 0
    np.testing.assert_allclose(m.coordinates(st)[:, 0], math.sqrt(5))
    assert np.all(m.coordinates(st)[:, 1] == 0)
    assert m.vectors(st) is st.x
    assert m.names == ("r", "c") and m.coordinates(st).shape == (20, 2)
    diag = m.diagnostics(st)
    assert set(diag) == {"loss", "loss_exact", "energy"}
    assert diag["loss_exact"] == pytest.approx(m.C_f)   # c = 0: f_n = 0
    assert diag["loss"] == pytest.approx(0.5 * np.mean(m.f_holdout ** 2))
    info = m.describe()
    assert info["method"] == "gradient-flow" and info["n"] == 20 and info["kappa"] == 1.0
    g = RBFCharges(4000, d=3, y_init="gaussian", y_scale=2.0, c_std=0.5, holdout=10)
    x = g.initial_state(np.random.default_rng(1)).x
    assert np.std(x[:, :3]) == pytest.approx(2.0, rel=0.05)
    assert np.std(x[:, 3]) == pytest.approx(0.5, rel=0.05)
    s = RBFCharges(5, d=3, y_scale=0.5, holdout=10).initial_state(np.random.default_rng(2))
    np.testing.assert_allclose(np.linalg.norm(s.x[:, :3], axis=1), 0.5)


def test_non_finite_state_raises_particle_failure():
    m = RBFCharges(5, d=3, dt=0.1, holdout=10)
    st = m.initial_state(np.random.default_rng(0))
    m.advance(st, 2, None)
    st.x[0, 0] = np.nan
    with pytest.raises(ParticleFailure) as err:
        m.advance(st, 1, None)
    assert err.value.t == pytest.approx(0.2)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"),
    (dict(n=2.5), "n"),
    (dict(d=0), "d"),
    (dict(kappa=-1.0), "kappa"),
    (dict(kappa=float("nan")), "kappa"),
    (dict(dt=0.0), "dt"),
    (dict(method="adam"), "method"),
    (dict(batch=0), "batch"),
    (dict(quadrature=0), "quadrature"),
    (dict(method="sgd", quadrature=10), "quadrature"),
    (dict(charge_rate=-1.0), "charge_rate"),
    (dict(y_init="cube"), "y_init"),
    (dict(y_scale=0.0), "y_scale"),
    (dict(c_std=-0.1), "c_std"),
    (dict(holdout=0), "holdout"),
    (dict(target_seed=-1), "target_seed"),
    (dict(target=ThreeSpinTarget(3, 0)), "target"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    args = dict(n=4, d=5, holdout=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        RBFCharges(**args)


def test_target_bad_arguments():
    with pytest.raises(ValueError, match=r"\bd\b"):
        ThreeSpinTarget(0, 0)
    f = ThreeSpinTarget(3, 0)
    with pytest.raises(ValueError, match="last axis"):
        f(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\bn\b"):
        f.sample(0, 0)
