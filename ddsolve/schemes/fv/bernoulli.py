r"""The Bernoulli function of the Scharfetter–Gummel flux, in code the compiler vectorises.

.. math:: B(x) = \frac{x}{e^x - 1}, \qquad B(-x) = B(x) + x, \qquad
          B'(x) = \frac{B(x)\,(1 - B(x) - x)}{x},

evaluated once per face for every ``sg`` rate and every semi-implicit stage
(:mod:`ddsolve.schemes.fv.newton`). ``math.expm1`` is a call into the C library that
LLVM cannot vectorise (numba's vectorised math, SVML, is not available with every
``llvmlite``), and on the 96-cell Curie–Weiss flagship the 95 calls of one coefficient
loop took 1.1-1.4 us, a quarter of a whole semi-implicit stage. Here :math:`e^x - 1` is
computed inline, with no call and no branch, so the face loops are vectorised:

* argument reduction (Cody & Waite): :math:`x = k\ln 2 + r`, :math:`k = \lfloor x/\ln 2 +
  1/2\rfloor`, :math:`|r|\le\ln 2/2`, with :math:`\ln 2` split in a high part whose
  products with :math:`|k|\le 1022` are exact and a low part;
* :math:`q = e^r - 1` by its Taylor polynomial of degree 13, :math:`q = r + r^2p(r)`,
  with :math:`p` evaluated by Estrin's scheme (short dependency chains): the truncation is
  :math:`|r|^{14}/14! < 5\cdot10^{-18}` absolute, below :math:`2\cdot10^{-17}` relative to
  :math:`q`, and the relative error of :math:`q` for small :math:`r` is that of the
  polynomial's first terms, so :math:`q` is accurate to a few ulps with no cancellation;
* :math:`e^x - 1 = 2^k q + (2^k - 1)`, with :math:`2^k` built from its exponent bits
  (exact; for :math:`k = 0` the result is :math:`q` itself);
* the series :math:`1 - x/2 + x^2/12 - x^4/720` for :math:`|x| < 10^{-2}` (as for
  :math:`B'`), :math:`B = 0` above :math:`x = 708` (the library value there is below
  :math:`3\cdot10^{-305}`) and :math:`B = -x` far below zero, where :math:`e^x - 1 = -1`.

Measured against ``x / math.expm1(x)`` on :math:`1.7\cdot10^5` arguments from
:math:`10^{-300}` to 708 in magnitude: :math:`e^x - 1` within 1.2 ulps and :math:`B` within
1.8 ulps (``tests/ddsolve/test_bernoulli.py``). On the flagship's 95 faces the coefficient
loop takes 0.37-0.58 us against 0.8-1.6 us with the library
(``benchmarks/bench_bernoulli.py``).

The functions are ``inline="always"``: numba inlines them into the caller's IR, which is
then compiled with the *caller's* options, so a caller with the default
``error_model="python"`` gets a zero-division check around every division and its loop is not
vectorised. The kernels of :mod:`ddsolve.schemes.fv.newton` all use ``error_model="numpy"``. The Scharfetter–Gummel flux keeps the discrete
Gibbs state stationary for *any* values of :math:`B` that satisfy :math:`B(-x) = B(x) + x`,
which the flux uses in this form, so nothing of the scheme's structure depends on the last
bits of :math:`B`.

References
----------
W. J. Cody and W. Waite, *Software Manual for the Elementary Functions*, Prentice-Hall, 1980.
J.-M. Muller, *Elementary Functions: Algorithms and Implementation*, 2nd ed., Birkhäuser,
2006, ch. 11 (range reduction).
"""

from __future__ import annotations

import math

import numba as nb
from numba import types
from numba.extending import intrinsic

__all__ = ["bernoulli", "bernoulli_and_derivative", "expm1"]

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # the trailing 32 bits are zero: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_X_MAX = 708.0  # 2^k stays a normal number: |k| <= 1022
# the Taylor coefficients 1/(n + 2)! of (e^r - 1 - r)/r^2, n = 0..11
_C = tuple(1.0 / math.factorial(n + 2) for n in range(12))


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (a bit cast, no call)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@nb.njit(cache=True, error_model="numpy", inline="always")
def expm1(x: float) -> float:
    """:math:`e^x - 1` for :math:`|x| \\le 708` (arguments beyond are clamped), branch-free
    (module doc)."""
    xc = min(max(x, -_X_MAX), _X_MAX)
    xc = xc if xc == xc else 0.0  # NaN: a finite k (and NaN returned below)
    kf = math.floor(xc * _INV_LN2 + 0.5)  # an int64
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    # q = r + r^2 p(r), p(r) = sum_{n<12} r^n/(n+2)!, by Estrin's scheme (a dependency
    # chain of depth 5 instead of Horner's 12: 0.58 -> 0.38 us for 95 faces, measured)
    r2 = r * r
    r4 = r2 * r2
    p = ((_C[0] + _C[1] * r) + (_C[2] + _C[3] * r) * r2) \
        + ((_C[4] + _C[5] * r) + (_C[6] + _C[7] * r) * r2) * r4 \
        + ((_C[8] + _C[9] * r) + (_C[10] + _C[11] * r) * r2) * (r4 * r4)
    q = r + r2 * p  # e^r - 1
    s = _float_from_bits((kf + 1023) << 52)  # 2^k
    return s * q + (s - 1.0) if x == x else x


@nb.njit(cache=True, error_model="numpy", inline="always")
def bernoulli(x: float) -> float:
    """:math:`B(x) = x/(e^x - 1)` (series for :math:`|x| < 10^{-2}`; module doc)."""
    x2 = x * x
    series = 1.0 - 0.5 * x + x2 * (1.0 / 12.0) - x2 * x2 * (1.0 / 720.0)
    B = x / expm1(x)
    B = series if abs(x) < 1e-2 else B
    return 0.0 if x > _X_MAX else B


@nb.njit(cache=True, error_model="numpy", inline="always")
def bernoulli_and_derivative(x: float) -> tuple[float, float]:
    """:math:`B(x)` and :math:`B'(x)` (series for :math:`|x| < 10^{-2}`;
    :math:`B'(-x) = -1 - B'(x)`)."""
    B = bernoulli(x)
    x2 = x * x
    series = -0.5 + x * (1.0 / 6.0) - x2 * x * (1.0 / 180.0) + x2 * x2 * x * (1.0 / 5040.0)
    dB = B * (1.0 - B - x) / x
    return B, (series if abs(x) < 1e-2 else dB)
