r"""Activation functions :math:`\sigma:\mathbb{R}\to\mathbb{R}` and their Gaussian integrals.

Two-layer problems with Gaussian data only ever need :math:`\sigma` through Gaussian
expectations (Mei, Montanari & Nguyen, PNAS 2018, §2–3):

* :meth:`Activation.gaussian_mean` — :math:`G(\mu, s) = \mathbb{E}\,\sigma(\mu + sZ)`,
  so :math:`g(a) = G(0, a)`;
* :meth:`Activation.hermite` — the normalised Hermite coefficients

  .. math:: \hat c_k(a) = \frac{\mathbb{E}[\sigma(aZ)\,\mathrm{He}_k(Z)]}{\sqrt{k!}},
            \qquad Z\sim N(0,1),

  which by Mehler's formula give the correlated expectation
  :math:`\mathbb{E}[\sigma(aZ_1)\sigma(bZ_2)] = \sum_k t^k\,\hat c_k(a)\hat c_k(b)` for
  unit normals with correlation :math:`t` (O'Donnell, *Analysis of Boolean Functions*,
  §11.2); Parseval gives :math:`\sum_k \hat c_k(a)^2 = \mathbb{E}\sigma(aZ)^2`
  (:meth:`Activation.second_moment`), the basis of the truncation bounds in
  :mod:`ddsolve.networks.reduction`.

Piecewise-linear activations (ReLU, the ramps of Mei–Montanari–Nguyen) have all of these
in closed form: writing :math:`\sigma(t) = v_1 + \lambda(t-b_1) + \sum_j \Delta_j (t-b_j)_+`
with slope jumps :math:`\Delta_j` at the breakpoints :math:`b_j`, Stein's identity
:math:`\mathbb{E}[f(Z)\mathrm{He}_k(Z)] = \mathbb{E}[f^{(k)}(Z)]` and
:math:`\sigma'' = \sum_j\Delta_j\delta_{b_j}` give, for :math:`k\ge 2` and :math:`a>0`,

.. math:: \mathbb{E}[\sigma(aZ)\mathrm{He}_k(Z)]
          = a\sum_j \Delta_j\,\mathrm{He}_{k-2}(b_j/a)\,\varphi(b_j/a).

Smooth activations (sigmoid, tanh) use Gauss–Hermite quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from ddsolve.grid.quadrature import gauss_legendre

__all__ = [
    "Activation",
    "PiecewiseLinear",
    "Sigmoid",
    "Tanh",
    "ACTIVATIONS",
    "make_activation",
    "relu",
    "mmn_ramp",
    "mmn_nonmonotone",
    "normalised_hermite",
    "correlated_expectation",
]

_SQRT2PI = math.sqrt(2.0 * math.pi)


def _phi(x):
    return np.exp(-0.5 * np.square(x)) / _SQRT2PI


def normalised_hermite(x: np.ndarray, kmax: int, weight: np.ndarray | None = None) -> np.ndarray:
    r"""``weight * He_k(x)/sqrt(k!)`` for ``k = 0..kmax``, shape ``(kmax+1, *x.shape)``.

    The three-term recurrence :math:`\psi_{k+1} = (x\psi_k - \sqrt{k}\,\psi_{k-1})/\sqrt{k+1}`
    is run on the weighted values, so a tiny weight (a Gaussian factor far out) keeps
    the products representable where :math:`\mathrm{He}_k(x)` alone would overflow.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty((kmax + 1,) + x.shape)
    out[0] = 1.0 if weight is None else weight
    if kmax >= 1:
        out[1] = x * out[0]
    for k in range(1, kmax):
        out[k + 1] = (x * out[k] - math.sqrt(k) * out[k - 1]) / math.sqrt(k + 1)
    return out


class Activation:
    r"""Base class of activations. Subclasses implement ``__call__`` and ``derivative``;
    the Gaussian integrals default to a composite Gauss–Legendre rule in
    :math:`z\in[-12, 12]` (the normal mass outside is :math:`4\cdot10^{-33}`) whose
    panels are narrow enough for :math:`\sigma(\mu + sz)` at the largest scale ``s``
    asked for and for the Hermite polynomials of the highest order (``width`` is the
    scale over which :math:`\sigma` changes, e.g. 1 for tanh)."""

    name = "activation"
    #: scale (in the argument of sigma) over which a smooth activation varies
    width = 1.0
    #: Gauss–Legendre nodes per panel
    panel_nodes = 12

    def __call__(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def derivative(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # Gaussian integrals -------------------------------------------------------------
    def _nodes(self, scale: float, kmax: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``z`` and weights ``w`` (normal density included) of the composite rule."""
        L = 12.0
        h = min(0.5, 0.25 * self.width / max(scale, 1e-300), 1.5 / math.sqrt(kmax + 1.0))
        panels = int(min(math.ceil(2 * L / h), 20_000))
        x, w = gauss_legendre(self.panel_nodes)
        edges = np.linspace(-L, L, panels + 1)
        half = 0.5 * np.diff(edges)
        z = (edges[:-1, None] + half[:, None] * (x + 1.0)).ravel()
        wz = (half[:, None] * w).ravel() * np.exp(-0.5 * z * z) / _SQRT2PI
        return z, wz

    def _chunked(self, values, nodes: int, func) -> np.ndarray:
        """Apply ``func`` to flat chunks of ``values`` so that a chunk times the number of
        quadrature nodes stays below ~2e7 numbers; returns ``(*leading, *values.shape)``
        results concatenated along the last axis."""
        flat = [np.ravel(v) for v in values]
        n = flat[0].size
        step = max(1, int(2e7 // max(nodes, 1)))
        parts = [func(*(v[i:i + step] for v in flat)) for i in range(0, n, step)] or [func(*flat)]
        out = np.concatenate(parts, axis=-1)
        return out.reshape(out.shape[:-1] + np.shape(values[0]))

    def gaussian_mean(self, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
        r""":math:`\mathbb{E}\,\sigma(\mu + sZ)`, broadcasting ``mu`` and ``s >= 0``."""
        mu, s = np.broadcast_arrays(np.asarray(mu, float), np.asarray(s, float))
        z, w = self._nodes(float(np.max(s, initial=0.0)))
        return self._chunked((mu, s), z.size, lambda m, sd: self(m[:, None] + sd[:, None] * z) @ w)

    def g(self, a: np.ndarray) -> np.ndarray:
        r""":math:`g(a) = \mathbb{E}\,\sigma(aZ)`."""
        return self.gaussian_mean(0.0, np.asarray(a, float))

    def second_moment(self, a: np.ndarray) -> np.ndarray:
        r""":math:`\mathbb{E}\,\sigma(aZ)^2`."""
        a = np.asarray(a, float)
        z, w = self._nodes(float(np.max(a, initial=0.0)))
        return self._chunked((a,), z.size, lambda x: self(x[:, None] * z) ** 2 @ w)

    def hermite(self, a: np.ndarray, kmax: int) -> np.ndarray:
        r"""Normalised Hermite coefficients :math:`\hat c_k(a)`, ``k = 0..kmax``, shape
        ``(kmax+1, *a.shape)``."""
        a = np.asarray(a, float)
        z, w = self._nodes(float(np.max(a, initial=0.0)), kmax)
        psi = normalised_hermite(z, kmax, np.sqrt(w))  # sqrt(w) psi_k(z)
        sw = np.sqrt(w)
        return self._chunked((a,), z.size, lambda x: psi @ (self(x[:, None] * z) * sw).T)

    def hermite_derivative(self, a: np.ndarray, kmax: int) -> np.ndarray:
        r""":math:`d\hat c_k/da = \big(\sqrt{(k+1)(k+2)}\,\hat c_{k+2} + k\,\hat c_k\big)/a`
        (from :math:`Z\mathrm{He}_k = \mathrm{He}_{k+1} + k\mathrm{He}_{k-1}` and Stein's
        identity), ``k = 0..kmax``."""
        a = np.asarray(a, float)
        c = self.hermite(a, kmax + 2)
        k = np.arange(kmax + 1).reshape((-1,) + (1,) * a.ndim)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (np.sqrt((k + 1) * (k + 2)) * c[2:] + k * c[:-2]) / a
        return np.where(a > 0, d, 0.0)

    @property
    def homogeneous(self) -> tuple[float, float] | None:
        r"""``(p, q)`` if :math:`\sigma(t) = p\,t_+ - q\,(-t)_+` (ReLU family, positively
        homogeneous), else ``None``."""
        return None

    def to_dict(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class PiecewiseLinear(Activation):
    r"""Continuous piecewise-linear activation.

    Parameters
    ----------
    breakpoints : sequence of float
        Increasing :math:`b_1 < \dots < b_n` (``n >= 1``).
    values : sequence of float
        :math:`\sigma(b_j)`; :math:`\sigma` is linear in between.
    outer_slopes : (float, float)
        Slopes for :math:`t < b_1` and :math:`t > b_n` (default ``(0, 0)``: constant
        outside, a bounded "clipped" activation).
    name : str
    """

    def __init__(self, breakpoints: Sequence[float], values: Sequence[float],
                 outer_slopes: Sequence[float] = (0.0, 0.0), name: str = "piecewise-linear"):
        b = np.asarray(breakpoints, dtype=float).ravel()
        v = np.asarray(values, dtype=float).ravel()
        if b.size < 1 or b.size != v.size:
            raise ValueError(f"breakpoints and values need the same length >= 1, got {b.size} and {v.size}")
        if not (np.all(np.isfinite(b)) and np.all(np.isfinite(v))):
            raise ValueError("breakpoints and values must be finite")
        if np.any(np.diff(b) <= 0):
            raise ValueError(f"breakpoints must be strictly increasing, got {b.tolist()}")
        lo, hi = (float(s) for s in outer_slopes)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("outer_slopes must be finite")
        self.breakpoints, self.values = b, v
        self.outer_slopes = (lo, hi)
        self.slopes = np.concatenate([[lo], np.diff(v) / np.diff(b), [hi]])  # n + 1 pieces
        self.jumps = np.diff(self.slopes)  # Delta_j at b_j
        self.name = name
        # pieces sigma = alpha + beta t on [edges[i], edges[i+1]]
        self.edges = np.concatenate([[-np.inf], b, [np.inf]])
        anchor = np.concatenate([[b[0]], b])
        vals = np.concatenate([[v[0]], v])
        self.beta = self.slopes
        self.alpha = vals - self.beta * anchor

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        out = self.values[0] + self.slopes[0] * (t - self.breakpoints[0])
        for bj, dj in zip(self.breakpoints, self.jumps):
            out = out + dj * np.maximum(t - bj, 0.0)
        return out

    def derivative(self, t):
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(self.breakpoints, t, side="right")
        return self.slopes[idx]

    def _piece_moments(self, mu, s):
        """Truncated moments E[Z^p 1{Z in piece_i}] (p = 0, 1, 2) of the pieces seen
        through t = mu + s Z; shape (3, ..., pieces)."""
        mu, s = np.broadcast_arrays(np.asarray(mu, float), np.asarray(s, float))
        mu, s = mu[..., None], s[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.where(s > 0, (self.edges[:-1] - mu) / s, np.where(self.edges[:-1] < mu, -np.inf, np.inf))
            hi = np.where(s > 0, (self.edges[1:] - mu) / s, np.where(self.edges[1:] < mu, -np.inf, np.inf))
        # point mass (s = 0) at mu: the piece containing mu gets probability one
        m0 = ndtr(hi) - ndtr(lo)
        m1 = _phi(lo) - _phi(hi)
        with np.errstate(invalid="ignore"):
            tl = np.where(np.isfinite(lo), lo * _phi(lo), 0.0)
            th = np.where(np.isfinite(hi), hi * _phi(hi), 0.0)
        m2 = m0 + tl - th
        return m0, m1, m2, mu, s

    def gaussian_mean(self, mu, s):
        m0, m1, _, mu, s = self._piece_moments(mu, s)
        a = self.alpha + self.beta * mu  # sigma = a + beta s Z on each piece
        return np.sum(a * m0 + self.beta * s * m1, axis=-1)

    def second_moment(self, a):
        m0, m1, m2, mu, s = self._piece_moments(0.0, np.asarray(a, float))
        al, be = self.alpha, self.beta * s
        return np.sum(al * al * m0 + 2 * al * be * m1 + be * be * m2, axis=-1)

    def hermite(self, a, kmax):
        a = np.asarray(a, float)
        out = np.empty((kmax + 1,) + a.shape)
        out[0] = self.gaussian_mean(0.0, a)
        if kmax >= 1:
            m0, *_ = self._piece_moments(0.0, a)
            out[1] = a * np.sum(self.beta * m0, axis=-1)  # a E sigma'(aZ)
        if kmax >= 2:
            pos = a > 0
            safe = np.where(pos, a, 1.0)
            acc = np.zeros((kmax - 1,) + a.shape)
            for bj, dj in zip(self.breakpoints, self.jumps):
                x = bj / safe
                # phi(x) He_m(x)/sqrt(m!) for m = 0..kmax-2
                acc += dj * normalised_hermite(x, kmax - 2, _phi(x))
            k = np.arange(2, kmax + 1).reshape((-1,) + (1,) * a.ndim)
            # He_{k-2}/sqrt(k!) = psi_{k-2} / sqrt(k (k-1))
            out[2:] = np.where(pos, safe * acc / np.sqrt(k * (k - 1.0)), 0.0)
        return out

    @property
    def homogeneous(self):
        if self.breakpoints.size == 1 and self.breakpoints[0] == 0 and self.values[0] == 0:
            return float(self.slopes[1]), float(self.slopes[0])
        return None

    def to_dict(self):
        return {"name": self.name, "breakpoints": self.breakpoints.tolist(),
                "values": self.values.tolist(), "outer_slopes": list(self.outer_slopes)}


class Sigmoid(Activation):
    r"""Logistic sigmoid :math:`\sigma(t) = 1/(1 + e^{-\lambda t})`; ``rate = 2`` is the
    :math:`1/(1+e^{-2t})` of the seeds (equal to :math:`(1+\tanh t)/2`), ``rate = 1`` the
    standard one."""

    def __init__(self, rate: float = 1.0, name: str | None = None):
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"sigmoid rate must be positive, got {rate}")
        self.rate = float(rate)
        self.width = 2.0 / self.rate
        self.name = name or ("sigmoid" if rate == 1 else f"sigmoid{rate:g}")

    def __call__(self, t):
        return 0.5 * (1.0 + np.tanh(0.5 * self.rate * np.asarray(t, float)))

    def derivative(self, t):
        s = self(t)
        return self.rate * s * (1.0 - s)


class Tanh(Activation):
    r""":math:`\sigma(t) = \tanh(t)`."""

    name = "tanh"

    def __call__(self, t):
        return np.tanh(np.asarray(t, float))

    def derivative(self, t):
        return 1.0 / np.cosh(np.asarray(t, float)) ** 2


def relu() -> PiecewiseLinear:
    """:math:`\\max(t, 0)`."""
    return PiecewiseLinear([0.0], [0.0], (0.0, 1.0), name="relu")


def mmn_ramp() -> PiecewiseLinear:
    """The "ReLU-like" clipped ramp of Mei, Montanari & Nguyen (2018), Fig. 2:
    :math:`-2.5` for :math:`t\\le 0.5`, :math:`7.5` for :math:`t \\ge 1.5`, linear between."""
    return PiecewiseLinear([0.5, 1.5], [-2.5, 7.5], name="mmn-ramp")


def mmn_nonmonotone() -> PiecewiseLinear:
    """The non-monotone activation of Mei, Montanari & Nguyen (2018), Fig. 3:
    :math:`-2.5` for :math:`t\\le 0`, linear to :math:`-4` at :math:`t=0.5`, linear to
    :math:`7.5` at :math:`t=1.5`, constant after (the seed's text lost the minus signs)."""
    return PiecewiseLinear([0.0, 0.5, 1.5], [-2.5, -4.0, 7.5], name="mmn-nonmonotone")


ACTIVATIONS = {
    "relu": relu,
    "mmn-ramp": mmn_ramp,
    "mmn-nonmonotone": mmn_nonmonotone,
    "sigmoid": lambda: Sigmoid(1.0),
    "sigmoid2": lambda: Sigmoid(2.0, name="sigmoid2"),
    "tanh": Tanh,
}
"""Named activations (``piecewise-linear`` takes breakpoints and values instead)."""


def make_activation(name: str | Activation, breakpoints: Sequence[float] | None = None,
                    values: Sequence[float] | None = None,
                    outer_slopes: Sequence[float] = (0.0, 0.0)) -> Activation:
    """An activation by name (:data:`ACTIVATIONS`) or ``"piecewise-linear"`` with
    ``breakpoints`` and ``values``."""
    if isinstance(name, Activation):
        return name
    if name == "piecewise-linear":
        if breakpoints is None or values is None:
            raise ValueError("a piecewise-linear activation needs breakpoints and values")
        return PiecewiseLinear(breakpoints, values, outer_slopes)
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(ACTIVATIONS)}, piecewise-linear")
    return ACTIVATIONS[name]()


def correlated_expectation(activation: Activation, a, b, t, half_width: float = 10.0,
                           order: int = 16) -> np.ndarray:
    r""":math:`\mathbb{E}[\sigma(aZ_1)\,\sigma(bZ_t)]` for unit normals with correlation
    :math:`t`, by quadrature independent of the Hermite series.

    :math:`Z_t = tZ_1 + \sqrt{1-t^2}Z_2` and the inner expectation is the closed form
    :math:`G(btz, b\sqrt{1-t^2})` (:meth:`~ddsolve.networks.activations.Activation.gaussian_mean`);
    the outer integral over :math:`z\in[-L, L]` is composite Gauss–Legendre with panel
    breaks at the kinks of :math:`\sigma(az)` and around the (smoothed) kinks of
    :math:`G`. Broadcasts ``a, b >= 0`` and ``t`` in ``[-1, 1]``.
    """
    a, b, t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, t)))
    L = half_width
    s = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    breaks = [np.full(a.shape, -L), np.full(a.shape, L)]
    breaks += [np.full(a.shape, x) for x in np.linspace(-L, L, 9)[1:-1]]
    if isinstance(activation, PiecewiseLinear):
        with np.errstate(divide="ignore", invalid="ignore"):
            for bj in activation.breakpoints:
                breaks.append(np.where(a > 0, bj / a, L))
                zc = np.where(b * np.abs(t) > 0, bj / (b * t), L)
                width = np.where(np.abs(t) > 0, s / np.abs(t), L)
                for f in (-9.0, -3.0, -1.0, 0.0, 1.0, 3.0, 9.0):
                    breaks.append(zc + f * width)
    P = np.sort(np.clip(np.stack(breaks, axis=-1), -L, L), axis=-1)
    lo, hi = P[..., :-1], P[..., 1:]
    x, w = gauss_legendre(order)
    z = lo[..., None] + (hi - lo)[..., None] * 0.5 * (x + 1.0)
    wz = (hi - lo)[..., None] * 0.5 * w * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    inner = activation.gaussian_mean(b[..., None, None] * t[..., None, None] * z,
                                     np.broadcast_to(b[..., None, None] * s[..., None, None], z.shape))
    return np.sum(activation(a[..., None, None] * z) * inner * wz, axis=(-2, -1))
