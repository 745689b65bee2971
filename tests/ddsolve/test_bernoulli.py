"""The inline Bernoulli function of the sg flux against the C library's expm1."""

import math

import numba as nb
import numpy as np
import pytest

from ddsolve.schemes.fv.bernoulli import bernoulli, bernoulli_and_derivative, expm1

EPS = np.finfo(float).eps


@nb.njit(error_model="numpy")  # not cached: it inlines the kernels under test
def _evaluate(x):
    e, B, dB = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    for i in range(x.size):
        e[i] = expm1(x[i])
        B[i], dB[i] = bernoulli_and_derivative(x[i])
        if bernoulli(x[i]) != B[i] and not (math.isnan(B[i])):
            B[i] = np.nan  # the value alone and with its derivative must agree to the bit
    return e, B, dB


def _arguments():
    rng = np.random.default_rng(7)
    mag = np.concatenate([rng.uniform(0, 5, 40000), rng.uniform(0, 1e-2, 2000), rng.uniform(0, 708, 20000),
                          10.0 ** rng.uniform(-300, np.log10(708), 20000),
                          # both sides of the reduction's k = 0 interval and of the series
                          0.5 * math.log(2) + rng.uniform(-1e-9, 1e-9, 1000), np.array([1e-2, 0.5, 1.0, 708.0])])
    return np.concatenate([mag, -mag])


def _reference(x):
    em1 = np.array([math.expm1(v) for v in x])
    with np.errstate(invalid="ignore", divide="ignore"):
        B = np.where(np.abs(x) < 1e-2, 1 - x / 2 + x**2 / 12 - x**4 / 720, x / em1)
        dB = np.where(np.abs(x) < 1e-2, -0.5 + x / 6 - x**3 / 180 + x**5 / 5040, B * (1 - B - x) / x)
    return em1, B, dB


def test_expm1_and_bernoulli_are_within_a_few_ulps_of_the_library():
    x = _arguments()
    e, B, dB = _evaluate(x)
    e_ref, B_ref, dB_ref = _reference(x)
    ulp_e = np.abs(e - e_ref) / (EPS * np.abs(e_ref))
    ulp_B = np.abs(B - B_ref) / (EPS * np.abs(B_ref))
    assert np.all(np.isfinite(B)) and np.all(np.isfinite(dB))
    # the library is correctly rounded to within an ulp; the degree-13 polynomial and the
    # scaling add about one more (a degree-11 polynomial is ~100 ulps off near |r| = ln2/2)
    assert ulp_e.max() <= 3.0, (x[np.argmax(ulp_e)], ulp_e.max())
    assert ulp_B.max() <= 4.0, (x[np.argmax(ulp_B)], ulp_B.max())
    # the derivative's formula cancels near the series threshold, as the library's does
    big = np.abs(x) >= 1e-2
    rel_dB = np.abs(dB - dB_ref)[big] / np.abs(dB_ref[big])
    assert rel_dB.max() <= 5e-14  # measured 6.9e-15
    assert np.array_equal(dB[~big], dB_ref[~big]) or np.max(np.abs(dB - dB_ref)[~big]) <= 2 * EPS


def test_bernoulli_symmetry_and_limits():
    x = np.concatenate([np.linspace(-40, 40, 8001), [0.0, -0.0, 1e-300, -1e-300]])
    _, B, _ = _evaluate(x)
    _, Bm, _ = _evaluate(-x)
    # B(-x) = B(x) + x, which is how the flux uses it (to the rounding of the sum)
    scale = np.maximum(np.maximum(np.abs(B), np.abs(x)), Bm)
    assert np.max(np.abs(Bm - (B + x)) / scale) <= 4 * EPS
    assert B[-4] == 1.0 and B[-3] == 1.0
    assert np.all(np.diff(B[:8001]) < 0)  # B is decreasing
    big = np.array([708.0, 708.5, 709.0, 710.0, 1e6, 1e300])
    _, Bb, dBb = _evaluate(big)
    assert Bb[0] == pytest.approx(708.0 / math.expm1(708.0), rel=4 * EPS)
    assert np.all(Bb[1:] == 0.0) and np.all(dBb[1:] == 0.0)  # library: below 3e-305, then 0
    neg = np.array([-708.0, -745.0, -1e6])
    _, Bn, dBn = _evaluate(neg)
    assert np.array_equal(Bn, -neg) and np.all(dBn == -1.0)
    e, B, dB = _evaluate(np.array([np.nan]))
    assert np.isnan(e[0]) and np.isnan(B[0]) and np.isnan(dB[0])


def test_bernoulli_derivative_matches_a_difference_quotient():
    x = np.array([-30.0, -3.0, -0.5, -0.02, -0.011, 0.011, 0.02, 0.5, 3.0, 30.0])
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    _, Bp, _ = _evaluate(x + h)
    _, Bm, _ = _evaluate(x - h)
    _, _, dB = _evaluate(x)
    np.testing.assert_allclose(dB, (Bp - Bm) / (2 * h), rtol=1e-7, atol=1e-9)
