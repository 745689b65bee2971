r"""Interaction forces of an empirical measure: :math:`\nabla_1\!\int U(\theta_i,\cdot)\,d\rho_N`.

For :math:`\rho_N = \frac1N\sum_j\delta_{\theta_j}` the mean-field force on particle
:math:`i` is

.. math:: G_i = \frac1N\sum_{j=1}^N \nabla_1 U(\theta_i, \theta_j)

(the term :math:`j = i` included, as in the SGD of a network whose output contains every
neuron; for even smooth :math:`W` it vanishes). Four ways to compute it, chosen by
:func:`make_force`:

``mean``
    Exact in :math:`O(N)` when :math:`U` only sees a few moments: the Curie–Weiss kernel
    :math:`\frac\theta2|x-y|^2` gives :math:`G_i=\theta(\theta_i-\bar\theta)` (Dawson
    1983), the Kuramoto kernel :math:`-\kappa\sum_k\cos(2\pi z_k/L)` the first Fourier
    moments.
``features``
    Exact :math:`O(NT)` for kernels given as :math:`U(x,y)=\sum_{k\le T}f_k(x)f_k(y)` with
    feature gradients (the reduced kernels of two-layer problems,
    :class:`ddsolve.networks.reduction.ReducedKernel`): :math:`G_i = \sum_k\nabla f_k(\theta_i)\,
    \overline{f_k}`, :math:`\overline{f_k} = \frac1N\sum_jf_k(\theta_j)`.
``pairwise``
    Exact :math:`O(N^2)` double loop compiled with numba (threads over ``i``) for the
    built-in translation-invariant kernels (Gaussian, attractive–repulsive, cosine,
    quadratic), with the minimal-image convention on periodic axes.
``mesh``
    Particle–mesh for convolutions :math:`U(x,y)=W(x-y)` in a box: cloud-in-cell
    deposit on ``cells`` cells per axis, the convolution with :math:`\nabla W` by FFT
    (zero-padded, or periodic on a torus), and the same cloud-in-cell weights to
    interpolate back (Hockney & Eastwood, *Computer simulation using particles*, 1988).
    :math:`O(N + M\log M)`, second-order accurate in the mesh width.
``generic``
    Any :class:`~ddsolve.model.kernels.Kernel` through its vectorised ``gradient1``, in
    blocks of rows (:math:`O(N^2)` work, :math:`O(N\cdot\text{block})` memory); used for
    expression kernels and the reduced kernels of two-layer problems.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ddsolve.model.kernels import (
    AttractiveRepulsiveKernel,
    CosineKernel,
    GaussianKernel,
    Kernel,
    QuadraticKernel,
    TranslationInvariantKernel,
)

__all__ = ["InteractionForce", "make_force", "FORCE_METHODS"]

FORCE_METHODS = ("auto", "mean", "features", "pairwise", "mesh", "generic")

_GAUSS, _POWER, _COSINE, _QUADRATIC = 0, 1, 2, 3


class InteractionForce:
    """Base class: ``gradient(x)`` is :math:`(G_i)`, ``energy(x)`` is
    :math:`\\frac1{2N^2}\\sum_{ij}U(\\theta_i,\\theta_j)`."""

    method = ""

    def gradient(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def energy(self, x: np.ndarray) -> float:
        raise NotImplementedError


class _NoForce(InteractionForce):
    method = "none"

    def gradient(self, x):
        return np.zeros_like(x)

    def energy(self, x):
        return 0.0


class _MeanForce(InteractionForce):
    """Exact :math:`O(N)` forces for the quadratic and cosine kernels."""

    method = "mean"

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def gradient(self, x):
        k = self.kernel
        if isinstance(k, QuadraticKernel):
            return k.theta * (x - x.mean(axis=0))
        w = 2 * math.pi / k.length
        c, s = np.cos(w * x), np.sin(w * x)
        return k.kappa * w * (s * c.mean(axis=0) - c * s.mean(axis=0))

    def energy(self, x):
        k = self.kernel
        if isinstance(k, QuadraticKernel):
            return float(0.5 * k.theta * (np.mean(np.sum(x * x, axis=1)) - np.sum(x.mean(axis=0) ** 2)))
        w = 2 * math.pi / k.length
        return float(-0.5 * k.kappa * np.sum(np.cos(w * x).mean(axis=0) ** 2
                                             + np.sin(w * x).mean(axis=0) ** 2))


class _FeatureForce(InteractionForce):
    """Exact :math:`O(NT)` forces from a feature map with gradients."""

    method = "features"

    def __init__(self, kernel: Kernel, ndim: int) -> None:
        self.map = kernel.feature_map(ndim)

    def gradient(self, x):
        F, dF = self.map(x, gradient=True)  # (T, N), (T, N, ndim)
        return np.einsum("tnk,t->nk", dF, F.mean(axis=1))

    def energy(self, x):
        return 0.5 * float(np.sum(self.map(x).mean(axis=1) ** 2))


def _encode(kernel: Kernel) -> tuple[int, np.ndarray] | None:
    if isinstance(kernel, GaussianKernel):
        return _GAUSS, np.array([kernel.amplitude, kernel.sigma])
    if isinstance(kernel, AttractiveRepulsiveKernel):
        return _POWER, np.array([kernel.a, kernel.b])
    if isinstance(kernel, CosineKernel):
        return _COSINE, np.array([kernel.kappa, kernel.length])
    if isinstance(kernel, QuadraticKernel):
        return _QUADRATIC, np.array([kernel.theta])
    return None


@nb.njit(cache=True, inline="always", fastmath=True)
def _profile(kind, p, r2):
    """Radial kernels W(z) = w(|z|^2): returns (W, f) with grad W(z) = f z."""
    if kind == _GAUSS:
        w = p[0] * math.exp(-0.5 * r2 / (p[1] * p[1]))
        return w, -w / (p[1] * p[1])
    if kind == _POWER:
        if r2 == 0.0:
            return 0.0, 0.0
        r = math.sqrt(r2)
        if p[0] == 2.0 and p[1] == 1.0:  # the default |z|^2/2 - |z|: no pow calls
            return 0.5 * r2 - r, 1.0 - 1.0 / r
        return r ** p[0] / p[0] - r ** p[1] / p[1], r ** (p[0] - 2.0) - r ** (p[1] - 2.0)
    return 0.5 * p[0] * r2, p[0]  # quadratic


@nb.njit(cache=True, parallel=True, fastmath=True)
def _pairwise(x, kind, p, period, want_energy):
    """Row i (one thread each): G_i = mean_j grad W(x_i - x_j) and sum_j W. Radial
    kernels use their profile (one distance per pair); the cosine kernel is separable
    per axis."""
    n, dim = x.shape
    out = np.zeros((n, dim))
    row_energy = np.zeros(n)
    periodic = np.any(period > 0.0)
    for i in nb.prange(n):
        e = 0.0
        for j in range(n):
            r2 = 0.0
            for k in range(dim):
                d = x[i, k] - x[j, k]
                if periodic and period[k] > 0.0:
                    d -= period[k] * np.rint(d / period[k])
                r2 += d * d
            if kind == _COSINE:
                om = 2.0 * math.pi / p[1]
                for k in range(dim):
                    d = x[i, k] - x[j, k]
                    out[i, k] += p[0] * om * math.sin(om * d)
                    if want_energy:
                        e -= p[0] * math.cos(om * d)
                continue
            w, f = _profile(kind, p, r2)
            if want_energy:
                e += w
            for k in range(dim):
                d = x[i, k] - x[j, k]
                if periodic and period[k] > 0.0:
                    d -= period[k] * np.rint(d / period[k])
                out[i, k] += f * d
        for k in range(dim):
            out[i, k] /= n
        row_energy[i] = e
    return out, row_energy.sum() / (2.0 * n * n)


class _PairwiseForce(InteractionForce):
    """Compiled :math:`O(N^2)` double loop (see the module docstring)."""

    method = "pairwise"

    def __init__(self, kernel: Kernel, period: np.ndarray) -> None:
        code = _encode(kernel)
        if code is None:
            raise ValueError(f"interaction method 'pairwise' has compiled loops for the Gaussian, "
                             f"attractive-repulsive, cosine and quadratic kernels, not "
                             f"{type(kernel).__name__}; use 'generic'")
        self.kind, self.params = code
        self.period = np.ascontiguousarray(period, dtype=float)

    def gradient(self, x):
        return _pairwise(np.ascontiguousarray(x), self.kind, self.params, self.period, False)[0]

    def energy(self, x):
        return float(_pairwise(np.ascontiguousarray(x), self.kind, self.params, self.period, True)[1])


class _GenericForce(InteractionForce):
    """Blocks of :meth:`Kernel.gradient1` (any kernel)."""

    method = "generic"

    def __init__(self, kernel: Kernel, period: np.ndarray, block: int = 256) -> None:
        self.kernel = kernel
        self.period = np.asarray(period, dtype=float)
        self.block = block
        if np.any(self.period > 0) and not isinstance(kernel, TranslationInvariantKernel):
            raise ValueError("on periodic axes the interaction must be translation invariant")

    def _blocks(self, x):
        n = x.shape[0]
        for lo in range(0, n, self.block):
            yield lo, x[lo:lo + self.block]

    def _diff(self, xi, x):
        z = xi[:, None, :] - x[None, :, :]
        per = self.period > 0
        if np.any(per):
            z[..., per] -= self.period[per] * np.rint(z[..., per] / self.period[per])
        return z

    def gradient(self, x):
        out = np.empty_like(x)
        ti = isinstance(self.kernel, TranslationInvariantKernel)
        for lo, xi in self._blocks(x):
            g = (self.kernel.W_gradient(self._diff(xi, x)) if ti
                 else self.kernel.gradient1(xi[:, None, :], x[None, :, :]))
            out[lo:lo + xi.shape[0]] = g.mean(axis=1)
        return out

    def energy(self, x):
        total = 0.0
        ti = isinstance(self.kernel, TranslationInvariantKernel)
        for _, xi in self._blocks(x):
            u = self.kernel.W(self._diff(xi, x)) if ti else self.kernel(xi[:, None, :], x[None, :, :])
            total += float(np.sum(u))
        return 0.5 * total / x.shape[0] ** 2


class _MeshForce(InteractionForce):
    """Cloud-in-cell particle–mesh convolution (see the module docstring)."""

    method = "mesh"

    def __init__(self, kernel: TranslationInvariantKernel, lower, upper, periodic, cells: int) -> None:
        if not isinstance(kernel, TranslationInvariantKernel):
            raise ValueError("interaction method 'mesh' needs a convolution kernel U(x, y) = W(x - y)")
        self.kernel = kernel
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        if not np.all(np.isfinite(self.lower) & np.isfinite(self.upper)):
            raise ValueError("interaction method 'mesh' needs a bounded domain")
        self.periodic = np.asarray(periodic, dtype=bool)
        self.cells = int(cells)
        dim = self.lower.size
        self.h = (self.upper - self.lower) / self.cells
        # kernel values on the lattice of offsets (periodic: one period; else 2M zero-padded)
        axes = []
        for k in range(dim):
            m = self.cells
            if self.periodic[k]:
                off = np.arange(m)
                off = np.where(off > m // 2, off - m, off)
            else:
                off = np.arange(2 * m)
                off = np.where(off >= m, off - 2 * m, off)
            axes.append(off * self.h[k])
        z = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        self.shape = z.shape[:-1]
        self._W_hat = np.fft.rfftn(kernel.W(z))
        g = kernel.W_gradient(z)
        self._G_hat = [np.fft.rfftn(g[..., k]) for k in range(dim)]

    def _weights(self, x):
        """Cloud-in-cell: lower node index and weights per axis (nodes at cell centres)."""
        s = (x - self.lower) / self.h - 0.5
        i0 = np.floor(s).astype(np.int64)
        f = s - i0
        return i0, f

    def _stencil(self, x):
        dim = x.shape[1]
        i0, f = self._weights(x)
        for corner in np.ndindex(*(2,) * dim):
            idx, w = [], np.ones(x.shape[0])
            for k, c in enumerate(corner):
                ik = i0[:, k] + c
                w = w * (f[:, k] if c else 1 - f[:, k])
                if self.periodic[k]:
                    ik = ik % self.cells
                else:  # particles within half a cell of the wall: clamp to the edge node
                    ik = np.clip(ik, 0, self.cells - 1)
                idx.append(ik)
            yield tuple(idx), w

    def _convolve(self, x, hat):
        rho = np.zeros(self.shape)
        for idx, w in self._stencil(x):
            np.add.at(rho, idx, w / x.shape[0])
        field = np.fft.irfftn(np.fft.rfftn(rho) * hat, s=self.shape, axes=tuple(range(rho.ndim)))
        out = np.zeros(x.shape[0])
        for idx, w in self._stencil(x):
            out += w * field[idx]
        return out

    def gradient(self, x):
        return np.stack([self._convolve(x, g) for g in self._G_hat], axis=1)

    def energy(self, x):
        return 0.5 * float(np.mean(self._convolve(x, self._W_hat)))


def make_force(kernel: Kernel, method: str = "auto", *, period=None, lower=None, upper=None,
               periodic=None, cells: int = 256) -> InteractionForce:
    """The force computation for ``kernel`` on particles in ``len(period)`` dimensions.

    Parameters
    ----------
    kernel : Kernel
    method : {"auto", "mean", "pairwise", "mesh", "generic"}
        ``auto`` picks ``mean`` for quadratic and cosine kernels, ``features`` for
        reduced two-layer kernels, ``pairwise`` for the other built-in convolution kernels
        and ``generic`` otherwise.
    period : array_like
        Period per axis (0 for a non-periodic axis), for the minimal-image convention.
    lower, upper, periodic, cells
        The box and mesh size of ``method = "mesh"``.
    """
    if method not in FORCE_METHODS:
        raise ValueError(f"interaction method must be one of {', '.join(FORCE_METHODS)}, got {method!r}")
    period = np.zeros(1) if period is None else np.asarray(period, dtype=float)
    if kernel.is_zero:
        return _NoForce()
    exact_mean = isinstance(kernel, QuadraticKernel) or (
        isinstance(kernel, CosineKernel) and np.all(np.isclose(period, kernel.length)))
    has_features = bool(getattr(kernel, "feature_gradients", False))
    if method == "auto":
        method = ("mean" if exact_mean else "features" if has_features
                  else "pairwise" if _encode(kernel) is not None else "generic")
    if method == "features":
        if not has_features:
            raise ValueError("interaction method 'features' needs a kernel with a feature map and "
                             "its gradients (the reduced two-layer kernels)")
        return _FeatureForce(kernel, period.size)
    if method == "mean":
        if not exact_mean:
            raise ValueError("interaction method 'mean' is exact only for the quadratic (Curie-Weiss) "
                             "kernel and the cosine kernel on its own period")
        return _MeanForce(kernel)
    if method == "pairwise":
        return _PairwiseForce(kernel, period)
    if method == "mesh":
        return _MeshForce(kernel, lower, upper, periodic if periodic is not None else period > 0, cells)
    return _GenericForce(kernel, period)
