r"""Interaction kernels :math:`U(\theta, \theta')`.

A kernel is a symmetric function of two points, :math:`U(\theta,\theta') =
U(\theta',\theta)`, with the gradient in its first argument :math:`\nabla_1 U` (what a
particle feels). Points are arrays of shape ``(..., ndim)`` that broadcast against each
other. Two structures are exposed because the grid solver exploits them:

* **translation invariance** :math:`U(x,y) = W(x-y)` (``kernel.W``): the interaction is
  a convolution and is applied by FFT on uniform grids;
* **separability** :math:`U(x,y) = \sum_k f_k(x) g_k(y)` with few terms
  (``kernel.separable_terms``): the interaction costs :math:`O(KM)` on :math:`M` cells
  (quadratic Curie–Weiss, Kuramoto, and later the Hermite expansions of two-layer nets).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ddsolve.model.expressions import compile_expression, free_symbol_names

__all__ = [
    "Kernel",
    "ZeroKernel",
    "TranslationInvariantKernel",
    "QuadraticKernel",
    "CosineKernel",
    "AttractiveRepulsiveKernel",
    "GaussianKernel",
    "ExpressionKernel",
    "ConvolutionExpressionKernel",
    "CallableKernel",
    "KERNELS",
    "make_kernel",
]

_AXIS_NAMES = ("x", "y", "z")
SeparableTerms = list[tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]]


class Kernel:
    """Base class of symmetric interaction kernels."""

    ndim: int | None = None
    translation_invariant: bool = False
    is_zero: bool = False

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gradient1(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r""":math:`\nabla_x U(x, y)`, shape ``broadcast(x, y)``."""
        raise NotImplementedError

    def separable_terms(self, ndim: int) -> SeparableTerms | None:
        """Pairs ``(f_k, g_k)`` with ``U(x,y) = sum_k f_k(x) g_k(y)``, or ``None``."""
        return None

    def feature_map(self, ndim: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """A symmetric low-rank form :math:`U(x,y) = \\sum_k f_k(x)f_k(y)`: a function
        mapping points ``(..., ndim)`` to all features at once, shape ``(T, ...)``
        (cheaper than :meth:`separable_terms` when the features share work, as the
        Hermite terms of two-layer kernels do), or ``None``."""
        return None

    def check_ndim(self, ndim: int) -> None:
        if self.ndim is not None and self.ndim != ndim:
            raise ValueError(
                f"{type(self).__name__} is defined in {self.ndim} dimension(s), the grid has {ndim}"
            )


class ZeroKernel(Kernel):
    """No interaction."""

    is_zero = True
    translation_invariant = True

    def __call__(self, x, y):
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y))[:-1])

    def gradient1(self, x, y):
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))

    def W(self, z):
        return np.zeros(np.shape(z)[:-1])

    def separable_terms(self, ndim):
        return []


class TranslationInvariantKernel(Kernel):
    r"""Kernel :math:`U(x,y) = W(x-y)` with :math:`W` even. Subclasses define ``W``
    and ``W_gradient``."""

    translation_invariant = True

    def W(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def W_gradient(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x, y):
        return self.W(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))

    def gradient1(self, x, y):
        return self.W_gradient(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))


class QuadraticKernel(TranslationInvariantKernel):
    r"""Curie–Weiss attraction :math:`U(x,y) = \tfrac{\theta}{2}|x-y|^2`
    (Dawson 1983; Carrillo et al. 2020). Separable: three kinds of terms."""

    def __init__(self, theta: float = 1.0):
        self.theta = float(theta)

    def W(self, z):
        return 0.5 * self.theta * np.sum(np.asarray(z) ** 2, axis=-1)

    def W_gradient(self, z):
        return self.theta * np.asarray(z, dtype=float)

    def separable_terms(self, ndim):
        th = self.theta
        sq = lambda x: 0.5 * th * np.sum(x**2, axis=-1)  # noqa: E731
        one = lambda x: np.ones(np.shape(x)[:-1])  # noqa: E731
        terms: SeparableTerms = [(sq, one), (one, sq)]
        for k in range(ndim):
            terms.append((lambda x, k=k: -th * x[..., k], lambda x, k=k: x[..., k]))
        return terms


class CosineKernel(TranslationInvariantKernel):
    r"""Kuramoto (noisy Kuramoto / Hegselmann) coupling on a periodic box of length L:

    .. math:: U(x,y) = -\kappa \sum_k \cos\!\big(2\pi (x_k-y_k)/L\big)

    (Carrillo, Gvalani, Pavliotis, Schlichting, ARMA 2020, with :math:`W=-\cos`).
    Separable through :math:`\cos(a-b) = \cos a\cos b + \sin a \sin b`."""

    def __init__(self, kappa: float = 1.0, length: float = 2 * np.pi):
        self.kappa = float(kappa)
        self.length = float(length)

    def W(self, z):
        return -self.kappa * np.sum(np.cos(2 * np.pi * np.asarray(z) / self.length), axis=-1)

    def W_gradient(self, z):
        k = 2 * np.pi / self.length
        return self.kappa * k * np.sin(k * np.asarray(z, dtype=float))

    def separable_terms(self, ndim):
        k = 2 * np.pi / self.length
        terms: SeparableTerms = []
        for a in range(ndim):
            terms.append((lambda x, a=a: -self.kappa * np.cos(k * x[..., a]),
                          lambda x, a=a: np.cos(k * x[..., a])))
            terms.append((lambda x, a=a: -self.kappa * np.sin(k * x[..., a]),
                          lambda x, a=a: np.sin(k * x[..., a])))
        return terms


class AttractiveRepulsiveKernel(TranslationInvariantKernel):
    r"""Power-law attraction–repulsion :math:`W(z) = |z|^a/a - |z|^b/b`, ``a > b > 0``.

    The default ``a=2, b=1`` gives :math:`|z|^2/2 - |z|`, whose aggregation steady state
    in 1D is the uniform density on an interval of length 2 (Carrillo, Chertock, Huang,
    CiCP 2015, Example 4). The gradient at :math:`z=0` is taken as 0.
    """

    def __init__(self, a: float = 2.0, b: float = 1.0):
        if not a > b > 0:
            raise ValueError(f"attractive-repulsive kernel needs a > b > 0, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)

    def W(self, z):
        n = np.sqrt(np.sum(np.asarray(z, dtype=float) ** 2, axis=-1))
        return n**self.a / self.a - n**self.b / self.b

    def W_gradient(self, z):
        z = np.asarray(z, dtype=float)
        n = np.sqrt(np.sum(z**2, axis=-1, keepdims=True))
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (n ** (self.a - 2) - n ** (self.b - 2)) * z
        return np.where(n > 0, g, 0.0)


class GaussianKernel(TranslationInvariantKernel):
    r"""Gaussian (RBF) kernel :math:`W(z) = A \exp(-|z|^2 / (2\sigma^2))`; ``A < 0`` attracts."""

    def __init__(self, amplitude: float = -1.0, sigma: float = 1.0):
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.amplitude, self.sigma = float(amplitude), float(sigma)

    def W(self, z):
        return self.amplitude * np.exp(-np.sum(np.asarray(z) ** 2, axis=-1) / (2 * self.sigma**2))

    def W_gradient(self, z):
        z = np.asarray(z, dtype=float)
        return -z / self.sigma**2 * self.W(z)[..., None]


class ExpressionKernel(Kernel):
    """General kernel given as text in ``x, y`` (1D: first and second point) or
    ``x1, x2, y1, y2`` (2D). Symmetry is checked at random points."""

    def __init__(self, expression: str, ndim: int = 1, parameters: dict[str, float] | None = None):
        self.ndim = int(ndim)
        if self.ndim == 1:
            self._first, self._second = ("x",), ("y",)
        else:
            self._first = tuple(f"x{k + 1}" for k in range(self.ndim))
            self._second = tuple(f"y{k + 1}" for k in range(self.ndim))
        self.expression = compile_expression(expression, self._first + self._second, parameters)
        rng = np.random.default_rng(0)
        p, q = rng.normal(size=(2, 16, self.ndim))
        if not np.allclose(self(p, q), self(q, p), rtol=1e-10, atol=1e-12):
            raise ValueError(f"interaction {expression!r} is not symmetric in its two points")

    def _args(self, x, y):
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        return [x[..., k] for k in range(self.ndim)] + [y[..., k] for k in range(self.ndim)]

    def __call__(self, x, y):
        return self.expression(*self._args(x, y))

    def gradient1(self, x, y):
        return self.expression.gradient(*self._args(x, y))[..., : self.ndim]


class ConvolutionExpressionKernel(TranslationInvariantKernel):
    """Translation-invariant kernel :math:`W(z)` given as text in ``z`` (1D) or
    ``z1, z2`` (2D); it must be even."""

    def __init__(self, expression: str, ndim: int = 1, parameters: dict[str, float] | None = None):
        self.ndim = int(ndim)
        names = ("z",) if self.ndim == 1 else tuple(f"z{k + 1}" for k in range(self.ndim))
        self.expression = compile_expression(expression, names, parameters)
        z = np.random.default_rng(0).normal(size=(16, self.ndim))
        if not np.allclose(self.W(z), self.W(-z), rtol=1e-10, atol=1e-12):
            raise ValueError(f"interaction W(z) = {expression!r} is not even in z")

    def W(self, z):
        z = np.asarray(z, dtype=float)
        return self.expression(*(z[..., k] for k in range(self.ndim)))

    def W_gradient(self, z):
        z = np.asarray(z, dtype=float)
        return self.expression.gradient(*(z[..., k] for k in range(self.ndim)))


class CallableKernel(Kernel):
    """Kernel from Python callables ``U(x, y)`` and optionally ``gradient1(x, y)``."""

    def __init__(self, func: Callable, gradient1: Callable | None = None,
                 terms: SeparableTerms | None = None):
        self._func, self._grad, self._terms = func, gradient1, terms

    def __call__(self, x, y):
        return np.asarray(self._func(np.asarray(x, float), np.asarray(y, float)), dtype=float)

    def gradient1(self, x, y):
        if self._grad is None:
            raise NotImplementedError("this CallableKernel was built without gradient1")
        return np.asarray(self._grad(np.asarray(x, float), np.asarray(y, float)), dtype=float)

    def separable_terms(self, ndim):
        return self._terms


KERNELS: dict[str, type[Kernel]] = {
    "zero": ZeroKernel,
    "quadratic": QuadraticKernel,
    "cosine": CosineKernel,
    "attractive-repulsive": AttractiveRepulsiveKernel,
    "gaussian": GaussianKernel,
}


def make_kernel(spec: str | Kernel | None, ndim: int, **params) -> Kernel:
    """Build a kernel from a registered name, an expression, or pass one through.

    Strings that are not names in :data:`KERNELS` are read as expressions: in ``z``
    (``z1, z2``) they define a convolution :math:`W(z)`, otherwise :math:`U(x, y)`.
    A Python callable ``U(x, y)`` (points of shape ``(..., ndim)``) is wrapped in a
    :class:`CallableKernel` (``gradient1=`` may be passed in ``params``).
    """
    if spec is None:
        return ZeroKernel()
    if isinstance(spec, Kernel):
        ker = spec
    elif callable(spec):
        ker = CallableKernel(spec, params.get("gradient1"))
    elif spec in KERNELS:
        ker = KERNELS[spec](**params)
    else:
        conv_names = {"z"} if ndim == 1 else {f"z{k + 1}" for k in range(ndim)}
        names = free_symbol_names(spec)
        uses_z = bool(names) and names <= conv_names
        ker = ConvolutionExpressionKernel(spec, ndim) if uses_z else ExpressionKernel(spec, ndim)
    ker.check_ndim(ndim)
    return ker
