r"""Gauss–Legendre rules, one source for the whole package.

:math:`\int_{-1}^{1} f(x)\,dx \approx \sum_i w_i f(x_i)` with :math:`n` nodes is exact for
polynomials of degree :math:`2n-1` (Golub & Welsch, Math. Comp. 23, 1969, give the
eigenvalue construction used by :func:`scipy.special.roots_legendre`). Cell averages on
grids, the angle and Gaussian integrals of the two-layer reductions and the bivariate
normal of the exact finite-network risk all take their nodes from here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import roots_legendre

__all__ = ["gauss_legendre", "half_gauss_legendre"]


@lru_cache(maxsize=64)
def _rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = roots_legendre(n)
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    x.flags.writeable = w.flags.writeable = False
    return x, w


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (ascending) and weights (summing to 2) of the ``n``-point rule on [-1, 1].

    The arrays are cached and read-only.

    Examples
    --------
    >>> x, w = gauss_legendre(2)
    >>> bool(np.allclose(x, [-3**-0.5, 3**-0.5])), float(w.sum())
    (True, 2.0)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"a Gauss-Legendre rule needs at least 1 node, got {n}")
    return _rule(n)


def half_gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The positive nodes (descending) and their weights of the even ``n``-point rule:
    the form of symmetric rules in compiled loops, ``sum_i w_i (f(x_i) + f(-x_i))``."""
    if n % 2:
        raise ValueError(f"half rules are for an even number of nodes, got {n}")
    x, w = gauss_legendre(n)
    return np.ascontiguousarray(x[n // 2:][::-1]), np.ascontiguousarray(w[n // 2:][::-1])
