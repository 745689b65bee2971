"""validation.metrics against closed forms: W_p between Gaussians, shifted and scaled
uniforms, to the uniform law on the circle; KS; restriction; the sampling floor's rate."""

import math

import numpy as np
import ot
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from ddsolve import cartesian
from validation import metrics as M


def gaussian_law(mean, std, lo=-10.0, hi=10.0, cells=2000):
    e = np.linspace(lo, hi, cells + 1)
    return M.Law1D(e, np.diff(st.norm.cdf(e, mean, std)))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_shifted_uniforms_are_at_distance_the_shift_for_every_p(p):
    e = np.linspace(0.0, 1.0, 7)
    a, b = M.Law1D(e, np.ones(6)), M.Law1D(e + 0.3, np.ones(6))
    assert M.wasserstein(a, b, p) == pytest.approx(0.3, rel=1e-9)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 1.5])
def test_scaled_uniform_matches_the_quantile_integral(p):
    # quantiles u and 2u on U(0,1) vs U(0,2): W_p^p = int_0^1 u^p du = 1/(p+1)
    e = np.linspace(0.0, 1.0, 11)
    a, b = M.Law1D(e, np.ones(10)), M.Law1D(2 * e, np.ones(10))
    assert M.wasserstein(a, b, p) == pytest.approx((1.0 / (p + 1)) ** (1.0 / p), rel=1e-8)


def test_w2_between_gaussians_has_the_closed_form_to_second_order_in_h():
    exact = math.sqrt(0.5**2 + 0.5**2)  # |m1 - m2|^2 + (s1 - s2)^2
    errs = []
    for cells in (250, 500, 1000):
        w = M.wasserstein(gaussian_law(0.0, 1.0, cells=cells), gaussian_law(0.5, 1.5, cells=cells), 2)
        errs.append(abs(w - exact))
    assert errs[-1] < 2e-5
    assert math.log(errs[0] / errs[2]) / math.log(4) > 1.8


def test_samples_agree_with_scipy_and_pot():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=700), rng.normal(0.2, 1.3, size=450)
    assert M.wasserstein(x, y, 1) == pytest.approx(st.wasserstein_distance(x, y), rel=1e-10)
    # POT's wasserstein_1d returns W_p^p
    assert M.wasserstein(x, y, 2) == pytest.approx(ot.wasserstein_1d(x, y, p=2) ** 0.5, rel=1e-10)
    assert M.wasserstein_samples(x, y, 1) == pytest.approx(st.wasserstein_distance(x, y), rel=1e-10)


def test_grid_density_is_not_treated_as_atoms():
    # a uniform density on [0, 1] with one cell: W1 to the point mass at 1/2 is 1/4 exactly
    # (atoms at the cell centre would give 0)
    law = M.Law1D(np.array([0.0, 1.0]), np.array([1.0]))
    assert M.wasserstein(law, [0.5], 1) == pytest.approx(0.25, rel=1e-12)
    assert M.wasserstein(law, [0.5], 2) == pytest.approx(math.sqrt(1 / 12), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.floats(-5, 5), min_size=1, max_size=30), hs.lists(hs.floats(-5, 5), min_size=1, max_size=30))
def test_w1_equals_the_cdf_area_formula(x, y):
    # W1 = int |F - G| dx (Vallender 1973), computed independently on the merged support
    pts = np.unique(np.concatenate([x, y]))
    Fx, Fy = M.Samples1D(x).cdf(pts[:-1]), M.Samples1D(y).cdf(pts[:-1])
    area = float(np.sum(np.abs(Fx - Fy) * np.diff(pts)))
    assert M.wasserstein(x, y, 1) == pytest.approx(area, rel=1e-9, abs=1e-12)
    assert M.wasserstein(x, y, 2) >= M.wasserstein(x, y, 1) - 1e-12


def test_ks_matches_scipy_against_a_fine_gaussian_grid():
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    d = M.ks_distance(gaussian_law(0.0, 1.0, cells=4000), x)
    assert d == pytest.approx(st.kstest(x, "norm").statistic, abs=2e-5)


def test_circle_w2_to_uniform_is_pots_closed_form_and_w1_is_exact():
    rng = np.random.default_rng(2)
    z = rng.random(300)
    unif = M.Law1D(np.linspace(0.0, 1.0, 51), np.ones(50))
    closed = float(np.sqrt(np.ravel(ot.semidiscrete_wasserstein2_unif_circle(z))[0]))
    assert M.wasserstein_circle(unif, z, p=2, refine=64) == pytest.approx(closed, abs=1e-3 / 64)
    # the W1 by the CDF formula agrees with POT's (to the atomisation error h / (2 refine))
    w1 = M.wasserstein_circle_w1(unif, z)
    assert w1 == pytest.approx(M.wasserstein_circle(unif, z, p=1, refine=64), abs=0.02 / 128)
    # a rotated copy of the circle's uniform law is at distance 0; period scales distances
    assert M.wasserstein_circle_w1(unif, M.Law1D(np.linspace(0, 1, 51), np.ones(50))) < 1e-14
    twopi = M.Law1D(np.linspace(0.0, 2 * np.pi, 51), np.ones(50))
    assert M.wasserstein_circle_w1(twopi, 2 * np.pi * z) == pytest.approx(2 * np.pi * w1, rel=1e-9)


def test_circle_distance_wraps_around():
    # mass near 0.05 and near 0.95 is 0.1 apart across the seam, not 0.9
    a = M.Law1D(np.linspace(0, 1, 21), np.eye(20)[1])  # uniform on [0.05, 0.10]
    b = M.Law1D(np.linspace(0, 1, 21), np.eye(20)[19])  # uniform on [0.95, 1.00]
    assert M.wasserstein_circle_w1(a, b) == pytest.approx(0.1, rel=1e-9)


def test_2d_transport_recovers_a_shift_and_sliced_is_below_it():
    c = cartesian([[-5, 5], [-5, 5]], [30, 30])
    e = c.axes[0].edges
    m = np.diff(st.norm.cdf(e))
    rho = np.outer(m, m) / c.cell_volume
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(400, 2)) + [1.0, 0.0]
    w = M.wasserstein_2d(c, rho, pts, p=2)
    floor = M.wasserstein_2d(c, rho, pts - [1.0, 0.0], p=2)
    # |W2(mu_N + s, nu) - |s|| <= W2(mu_N + s, nu + s) = W2(mu_N, nu), and W2(nu + s, nu) = |s|
    assert abs(w - 1.0) <= floor + 1e-9
    assert floor < 0.25
    sw = M.wasserstein_2d(c, rho, pts, p=2, method="sliced", n_projections=400)
    assert sw < w  # sliced W2 <= W2 (and ~ W2 / sqrt(2) for a shift in 2D)
    assert sw == pytest.approx(1.0 / math.sqrt(2), abs=0.1)
    with pytest.raises(ValueError, match="sliced"):
        M.wasserstein_2d(c, rho, pts, max_cost_entries=10)


def test_restriction_is_conservative_and_grid_distance_nests():
    fine = cartesian([0, 1], 8)
    coarse = cartesian([0, 1], 4)
    v = np.arange(8.0)
    r = M.restrict(v, 2)
    np.testing.assert_allclose(r, [0.5, 2.5, 4.5, 6.5])
    assert r.sum() * coarse.cell_volume == pytest.approx(v.sum() * fine.cell_volume)
    assert M.grid_distance(coarse, r, fine, v) == pytest.approx(0.0)
    assert M.grid_distance(coarse, r + 1.0, fine, v, "linf") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="nested"):
        M.grid_distance(cartesian([0, 1], 3), np.ones(3), fine, v)


def test_curve_sup_and_moments():
    t = np.linspace(0, 1, 11)
    assert M.curve_sup(t, t**2, t, t**2 + 0.1 * t) == pytest.approx(0.1)
    law = M.Law1D(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0]))  # U(0, 2)
    assert M.moments_of(law) == pytest.approx((1.0, 1.0 / 3.0))


def test_sampling_floor_decays_like_n_to_the_minus_half():
    law = gaussian_law(0.0, 1.0, cells=400)
    ns = [100, 400, 1600, 6400]
    floors = [M.sampling_floor(law, n, repeats=40, seed=n)[0] for n in ns]
    from ddsolve.orders import power_fit

    fit = power_fit(ns, floors)
    assert -0.62 < fit.slope < -0.38
    assert fit.ci_low < -0.5 < fit.ci_high
    # sqrt(N) W1(mu_N, mu) -> int |B(F(x))| dx, B a Brownian bridge, so its mean tends to
    # sqrt(2/pi) int sqrt(F(1 - F)) dx (del Barrio, Gine & Matran, Ann. Probab. 1999)
    from scipy.integrate import trapezoid

    x = np.linspace(-10, 10, 200001)
    F = st.norm.cdf(x)
    c = trapezoid(np.sqrt(F * (1 - F)), x) * math.sqrt(2 / math.pi)
    assert floors[-1] * math.sqrt(ns[-1]) == pytest.approx(c, rel=0.1)
