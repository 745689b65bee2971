r"""External potentials :math:`V(\theta)`.

A potential is a scalar function of a point :math:`\theta` in the coordinates of the
problem (a point of :math:`\mathbb{R}^n`, or the radius :math:`r` on radial
coordinates). Points are arrays of shape ``(..., ndim)``; values have shape ``(...)``
and gradients ``(..., ndim)``. The same object gives the grid solver its cell values and
the particle dynamics their forces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ddsolve.model.expressions import compile_expression

__all__ = [
    "Potential",
    "ZeroPotential",
    "QuadraticPotential",
    "DoubleWellPotential",
    "MullerBrownPotential",
    "ExpressionPotential",
    "CallablePotential",
    "POTENTIALS",
    "make_potential",
]

_AXIS_NAMES = ("x", "y", "z")


class Potential:
    """Base class: a scalar field with a gradient. Subclasses set ``ndim``."""

    ndim: int | None = None  # None: any dimension

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gradient(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_ndim(self, ndim: int) -> None:
        """Raise ``ValueError`` if the potential cannot live in ``ndim`` dimensions."""
        if self.ndim is not None and self.ndim != ndim:
            raise ValueError(
                f"{type(self).__name__} is defined in {self.ndim} dimension(s), "
                f"the grid has {ndim}"
            )


class ZeroPotential(Potential):
    """:math:`V \\equiv 0`."""

    def __call__(self, x):
        return np.zeros(np.shape(x)[:-1])

    def gradient(self, x):
        return np.zeros(np.shape(x))


class QuadraticPotential(Potential):
    r"""Quadratic well :math:`V(x) = \tfrac12 (x - c)^\top A (x - c)`.

    Parameters
    ----------
    stiffness : float or array_like
        :math:`A`: a scalar (isotropic) or a symmetric positive semi-definite matrix.
    center : array_like, optional
        :math:`c`, default the origin.
    """

    def __init__(self, stiffness: float | Sequence = 1.0, center: Sequence[float] | float = 0.0):
        A = np.asarray(stiffness, dtype=float)
        if A.ndim == 2:
            if A.shape[0] != A.shape[1] or not np.allclose(A, A.T):
                raise ValueError("stiffness matrix must be square and symmetric")
            self.ndim = A.shape[0]
        elif A.ndim != 0:
            raise ValueError("stiffness must be a scalar or a square matrix")
        self.A = A
        self.center = np.asarray(center, dtype=float)

    def _matrix(self, ndim: int) -> np.ndarray:
        return self.A if self.A.ndim == 2 else self.A * np.eye(ndim)

    def __call__(self, x):
        z = np.asarray(x, dtype=float) - self.center
        A = self._matrix(z.shape[-1])
        return 0.5 * np.einsum("...i,ij,...j->...", z, A, z)

    def gradient(self, x):
        z = np.asarray(x, dtype=float) - self.center
        return z @ self._matrix(z.shape[-1]).T


class DoubleWellPotential(Potential):
    r"""Double well :math:`V(x) = \sum_k a\,(x_k^4/4 - x_k^2/2)` (Desai–Zwanzig 1978)."""

    def __init__(self, depth: float = 1.0):
        self.depth = float(depth)

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        return self.depth * np.sum(x**4 / 4 - x**2 / 2, axis=-1)

    def gradient(self, x):
        x = np.asarray(x, dtype=float)
        return self.depth * (x**3 - x)


class MullerBrownPotential(Potential):
    r"""Müller–Brown potential (Müller & Brown, Theor. Chim. Acta 53, 1979).

    .. math:: V(x, y) = s \sum_{k=1}^4 A_k \exp\big(a_k (x - x_k)^2
              + b_k (x - x_k)(y - y_k) + c_k (y - y_k)^2\big)

    with the original parameters; ``scale`` :math:`s` (default 1) rescales the energy.
    Its global minimum is near (−0.558, 1.442) with :math:`V/s \approx -146.70`.
    """

    ndim = 2
    A = np.array([-200.0, -100.0, -170.0, 15.0])
    a = np.array([-1.0, -1.0, -6.5, 0.7])
    b = np.array([0.0, 0.0, 11.0, 0.6])
    c = np.array([-10.0, -10.0, -6.5, 0.7])
    x0 = np.array([1.0, 0.0, -0.5, -1.0])
    y0 = np.array([0.0, 0.5, 1.5, 1.0])

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def _terms(self, x):
        x = np.asarray(x, dtype=float)
        dx = x[..., 0, None] - self.x0
        dy = x[..., 1, None] - self.y0
        e = self.A * np.exp(self.a * dx**2 + self.b * dx * dy + self.c * dy**2)
        return dx, dy, e

    def __call__(self, x):
        return self.scale * self._terms(x)[2].sum(axis=-1)

    def gradient(self, x):
        dx, dy, e = self._terms(x)
        gx = (e * (2 * self.a * dx + self.b * dy)).sum(axis=-1)
        gy = (e * (self.b * dx + 2 * self.c * dy)).sum(axis=-1)
        return self.scale * np.stack([gx, gy], axis=-1)


class ExpressionPotential(Potential):
    """Potential given as text in the coordinates ``x`` (1D) or ``x, y`` (2D).

    On radial coordinates the variable is ``r``; ``names`` overrides the variable names.
    """

    def __init__(self, expression: str, ndim: int = 1, names: Sequence[str] | None = None,
                 parameters: dict[str, float] | None = None):
        self.ndim = int(ndim)
        names = tuple(names) if names is not None else _AXIS_NAMES[: self.ndim]
        if len(names) != self.ndim:
            raise ValueError(f"need {self.ndim} variable names, got {names}")
        self.expression = compile_expression(expression, names, parameters)

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        return self.expression(*(x[..., k] for k in range(self.ndim)))

    def gradient(self, x):
        x = np.asarray(x, dtype=float)
        return self.expression.gradient(*(x[..., k] for k in range(self.ndim)))


class CallablePotential(Potential):
    """Potential from Python callables ``V(x)`` and optionally ``gradient(x)`` acting on
    points of shape ``(..., ndim)``."""

    def __init__(self, func: Callable, gradient: Callable | None = None, ndim: int | None = None):
        self._func, self._grad, self.ndim = func, gradient, ndim

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        return np.broadcast_to(np.asarray(self._func(x), dtype=float), x.shape[:-1]).copy()

    def gradient(self, x):
        if self._grad is None:
            raise NotImplementedError("this CallablePotential was built without a gradient")
        return np.asarray(self._grad(np.asarray(x, dtype=float)), dtype=float)


POTENTIALS: dict[str, type[Potential]] = {
    "zero": ZeroPotential,
    "quadratic": QuadraticPotential,
    "double-well": DoubleWellPotential,
    "muller-brown": MullerBrownPotential,
}


def make_potential(spec: str | Potential | None, ndim: int, names: Sequence[str] | None = None,
                   **params) -> Potential:
    """Build a potential from a registered name, an expression, or pass one through.

    ``spec`` is a :class:`Potential`, a name in :data:`POTENTIALS` (with ``params``
    forwarded to its constructor), a Python callable ``V(x)`` (points of shape
    ``(..., ndim)``), or any other string, read as an expression.
    """
    if spec is None:
        return ZeroPotential()
    if isinstance(spec, Potential):
        pot = spec
    elif callable(spec):
        pot = CallablePotential(spec, params.get("gradient"), ndim)
    elif spec in POTENTIALS:
        pot = POTENTIALS[spec](**params)
    else:
        pot = ExpressionPotential(spec, ndim=ndim, names=names)
    pot.check_ndim(ndim)
    return pot
