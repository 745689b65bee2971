r"""Distances between particle systems and PDE densities, and between two grid densities.

A PDE density is the piecewise-constant function of its cell averages :math:`\rho_i` (the
finite-volume solution), so along one axis its CDF is piecewise linear and its quantile
function :math:`G^{-1}` is piecewise linear on the cumulative masses. An empirical measure
of :math:`N` particles has a step quantile function. Every 1D distance here is computed
exactly between these two representations, never by treating cell centres as atoms (which
adds a bias of order :math:`h`).

Wasserstein distances in 1D (Villani, *Topics in Optimal Transportation*, 2003, Thm 2.18):

.. math:: W_p(\mu, \nu)^p = \int_0^1 |F_\mu^{-1}(u) - F_\nu^{-1}(u)|^p\,du ,

integrated exactly on the merged breakpoints of both quantile functions (the integrand is
:math:`|\ell|^p` of a linear :math:`\ell` on each piece; closed forms for :math:`p = 1, 2`,
Gauss–Legendre on sign-definite pieces otherwise).

Radial laws. For rotation-invariant :math:`\mu, \nu` on :math:`\mathbb{R}^d`,
:math:`W_p(\mu, \nu) = W_p(|\cdot|_\#\mu, |\cdot|_\#\nu)`: :math:`||x| - |y|| \le |x - y|` gives
:math:`\ge`, and transporting along rays with the 1D monotone map of the radii attains it.
A radial PDE grid holds the density of :math:`r = |\theta|`, so the 1D formulas apply to
:math:`r` directly. For particles :math:`w_i \in \mathbb{R}^d` the distance is taken between
the law of :math:`|w_i|` and the PDE's law of :math:`r` (the quantity the PDE resolves; it
is a lower bound of the distance in :math:`\mathbb{R}^d`).

The circle: :func:`wasserstein_circle` uses POT's ``ot.wasserstein_circle`` (Delon,
Salomon & Sobolevski 2010; Hundrieser, Klatt & Munk 2022) with each cell split into
``refine`` equal atoms, which bounds the atomisation error by :math:`h/(2\,\mathrm{refine})`
(:math:`W_1` is also available exactly through the CDF formula
:math:`W_1 = \min_c \int_0^1 |F - G - c|`, with :math:`c` the median of :math:`F - G`).

Two-dimensional grids: POT's exact ``ot.emd2`` and ``ot.sliced_wasserstein_distance``
(Bonneel, Rabin, Peyré & Pfister 2015), the grid density as a weighted point cloud of
``refine``² atoms per occupied cell.

The **sampling floor** (:func:`sampling_floor`) is the same metric between an i.i.d. sample
of size :math:`N` from the PDE density and the density itself: the distance below which
:math:`N` points cannot resolve the law. For 1D laws with finite moments
:math:`E\,W_1 \sim c\,N^{-1/2}` (Bobkov & Ledoux, *One-dimensional empirical measures,
order statistics, and Kantorovich transport distances*, Mem. AMS 2019, §3).

Examples
--------
>>> import numpy as np
>>> from validation.metrics import Law1D, wasserstein
>>> edges = np.linspace(-1.0, 1.0, 201)
>>> uniform = Law1D(edges, np.ones(200))
>>> shifted = Law1D(edges + 0.25, np.ones(200))
>>> round(wasserstein(uniform, shifted, p=2), 12)
0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Law1D", "Samples1D", "as_law", "wasserstein", "wasserstein_samples", "ks_distance",
    "wasserstein_circle", "wasserstein_circle_w1", "wasserstein_2d", "grid_law_from",
    "marginal", "restrict", "grid_distance", "curve_sup", "moments_of", "moment_errors",
    "sample_law", "sampling_floor",
]


# --- one-dimensional laws -------------------------------------------------------------------

@dataclass(frozen=True)
class Law1D:
    """A piecewise-constant density on ``edges`` with cell masses ``masses`` (normalised).

    Parameters
    ----------
    edges : ndarray, shape (M + 1,)
        Increasing cell edges.
    weights : ndarray, shape (M,)
        Non-negative cell *masses* (not densities); normalised to total mass 1.
    """

    edges: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=float)
        w = np.asarray(self.weights, dtype=float)
        if e.ndim != 1 or w.shape != (e.size - 1,):
            raise ValueError(f"edges of shape (M+1,) and masses of shape (M,) needed, got "
                             f"{e.shape} and {w.shape}")
        if np.any(np.diff(e) <= 0):
            raise ValueError("edges must be increasing")
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("cell masses must be finite, non-negative and not all zero")
        object.__setattr__(self, "edges", e)
        object.__setattr__(self, "weights", w / w.sum())

    @classmethod
    def from_density(cls, edges: np.ndarray, density: np.ndarray) -> Law1D:
        """From cell averages of a density w.r.t. the length element (``mass = density·h``);
        negative values (round-off) are clipped to 0."""
        e = np.asarray(edges, dtype=float)
        return cls(e, np.maximum(np.asarray(density, dtype=float), 0.0) * np.diff(e))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """The piecewise-linear CDF at ``x``."""
        c = np.concatenate([[0.0], np.cumsum(self.weights)])
        return np.interp(x, self.edges, c)

    def quantile_pieces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, left, right)``: on ``[u_k, u_{k+1}]`` the quantile function is linear from
        ``left_k`` to ``right_k``; empty cells are skipped."""
        keep = self.weights > 0
        c = np.concatenate([[0.0], np.cumsum(self.weights[keep])])
        c[-1] = 1.0
        return c, self.edges[:-1][keep], self.edges[1:][keep]

    def mean(self) -> float:
        mid = 0.5 * (self.edges[1:] + self.edges[:-1])
        return float(self.weights @ mid)

    def moment2(self) -> float:
        a, b = self.edges[:-1], self.edges[1:]
        return float(self.weights @ ((a * a + a * b + b * b) / 3.0))


@dataclass(frozen=True)
class Samples1D:
    """An empirical measure :math:`\\sum_i w_i\\delta_{x_i}` (equal weights by default)."""

    x: np.ndarray
    w: np.ndarray | None = None

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=float).ravel()
        if x.size == 0 or not np.isfinite(x).all():
            raise ValueError("samples must be finite and not empty")
        order = np.argsort(x, kind="stable")
        w = np.full(x.size, 1.0 / x.size) if self.w is None else np.asarray(self.w, float).ravel()
        if w.shape != x.shape or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("sample weights must match the samples and be non-negative")
        object.__setattr__(self, "x", x[order])
        object.__setattr__(self, "w", w[order] / w.sum())

    def cdf(self, x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(self.w)])
        return c[np.searchsorted(self.x, x, side="right")]

    def quantile_pieces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = np.concatenate([[0.0], np.cumsum(self.w)])
        c[-1] = 1.0
        return c, self.x, self.x

    def mean(self) -> float:
        return float(self.w @ self.x)

    def moment2(self) -> float:
        return float(self.w @ self.x**2)


OneD = Law1D | Samples1D


def as_law(obj) -> OneD:
    """A :class:`Law1D` or :class:`Samples1D` as it is; an array as equal-weight samples."""
    return obj if isinstance(obj, (Law1D, Samples1D)) else Samples1D(obj)


def _eval_pieces(pieces, u: np.ndarray, side: str) -> np.ndarray:
    """Value of a piecewise-linear quantile function at ``u`` (right limit for
    ``side="right"``, left limit for ``"left"``)."""
    c, left, right = pieces
    k = np.searchsorted(c, u, side=side) - 1 if side == "right" else np.searchsorted(c, u, side="left") - 1
    k = np.clip(k, 0, left.size - 1)
    width = c[k + 1] - c[k]
    frac = np.where(width > 0, (u - c[k]) / np.where(width > 0, width, 1.0), 0.0)
    return left[k] + np.clip(frac, 0.0, 1.0) * (right[k] - left[k])


_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)


def _integral_abs_power(a: np.ndarray, b: np.ndarray, du: np.ndarray, p: float) -> float:
    r""":math:`\sum_k \int_0^{du_k} |a_k + (b_k - a_k)s/du_k|^p ds`, exactly for p = 1, 2."""
    if p == 2:
        return float(np.sum(du * (a * a + a * b + b * b) / 3.0))
    aa, ab = np.abs(a), np.abs(b)
    if p == 1:
        same = a * b >= 0
        s = aa + ab
        cross = np.where(s > 0, (a * a + b * b) / (2.0 * np.where(s > 0, s, 1.0)), 0.0)
        return float(np.sum(du * np.where(same, 0.5 * s, cross)))
    # split at the zero of the linear function, then Gauss-Legendre on |.|^p (smooth there)
    total = 0.0
    z = np.where((a * b < 0), a / np.where(a - b != 0, a - b, 1.0), 1.0)  # zero at fraction z
    for lo, hi in ((np.zeros_like(z), z), (z, np.ones_like(z))):
        half = 0.5 * (hi - lo)
        mid = 0.5 * (hi + lo)
        s = mid[:, None] + half[:, None] * _GL_X[None, :]
        vals = np.abs(a[:, None] + (b - a)[:, None] * s) ** p
        total += float(np.sum(du * half * (vals @ _GL_W)))
    return total


def wasserstein(mu, nu, p: float = 1.0) -> float:
    r"""Exact :math:`W_p` between two laws on the line (or two radial laws, on :math:`r`).

    Parameters
    ----------
    mu, nu : Law1D, Samples1D or array_like
        Grid densities (piecewise constant) or empirical measures (arrays are taken as
        equally weighted samples).
    p : float, >= 1

    Returns
    -------
    float
        :math:`W_p` (not its p-th power; POT's ``wasserstein_1d`` returns :math:`W_p^p`).

    Examples
    --------
    >>> round(wasserstein([0.0, 1.0], [0.5, 1.5], p=2), 12)
    0.5
    """
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    A, B = as_law(mu).quantile_pieces(), as_law(nu).quantile_pieces()
    u = np.union1d(A[0], B[0])
    lo, hi = u[:-1], u[1:]
    du = hi - lo
    keep = du > 0
    lo, hi, du = lo[keep], hi[keep], du[keep]
    da = _eval_pieces(A, lo, "right") - _eval_pieces(B, lo, "right")
    db = _eval_pieces(A, hi, "left") - _eval_pieces(B, hi, "left")
    return max(_integral_abs_power(da, db, du, p), 0.0) ** (1.0 / p)


def wasserstein_samples(x, y, p: float = 1.0) -> float:
    """Exact :math:`W_p` between two equally weighted 1D samples (any sizes)."""
    return wasserstein(Samples1D(x), Samples1D(y), p)


def ks_distance(mu, nu) -> float:
    r"""Kolmogorov–Smirnov distance :math:`\sup_x |F_\mu(x) - F_\nu(x)|`, exact for a grid
    density and an empirical measure (or two of either kind)."""
    mu, nu = as_law(mu), as_law(nu)
    pts = []
    for law in (mu, nu):
        pts.append(law.edges if isinstance(law, Law1D) else law.x)
    x = np.unique(np.concatenate(pts))
    d = np.abs(mu.cdf(x) - nu.cdf(x))
    # left limits at the atoms of empirical measures
    xl = np.nextafter(x, -np.inf)
    d = np.maximum(d, np.abs(mu.cdf(xl) - nu.cdf(xl)))
    return float(d.max())


def moments_of(law) -> tuple[float, float]:
    """``(mean, variance)`` of a 1D law (exact for the piecewise-constant density)."""
    law = as_law(law)
    m = law.mean()
    return m, law.moment2() - m * m


def moment_errors(mu, nu) -> dict[str, float]:
    """``{"mean": |Δmean|, "variance": |Δvariance|}`` between two 1D laws."""
    (m1, v1), (m2, v2) = moments_of(mu), moments_of(nu)
    return {"mean": abs(m1 - m2), "variance": abs(v1 - v2)}


# --- grids: laws, marginals, restriction -----------------------------------------------------

def grid_law_from(coords, values: np.ndarray, axis: int = 0) -> Law1D:
    """The marginal law along ``axis`` of a density on ``coords`` (a radial axis gives the
    law of :math:`r`)."""
    return Law1D(coords.axes[axis].edges, marginal(coords, values, axis))


def marginal(coords, values: np.ndarray, axis: int) -> np.ndarray:
    """Cell masses of the marginal along ``axis``, shape ``(coords.shape[axis],)``."""
    v = np.maximum(np.asarray(values, dtype=float).reshape(coords.shape), 0.0) * coords.cell_volume
    others = tuple(k for k in range(coords.ndim) if k != axis)
    return v.sum(axis=others) if others else v


def restrict(values: np.ndarray, factors: int | Sequence[int]) -> np.ndarray:
    """Conservative restriction of cell averages to a grid coarser by the integer
    ``factors`` per axis (block averages; the integral over every coarse cell is kept)."""
    v = np.asarray(values, dtype=float)
    f = [int(factors)] * v.ndim if np.isscalar(factors) else [int(k) for k in factors]
    shape = []
    for n, k in zip(v.shape, f):
        if k < 1 or n % k:
            raise ValueError(f"cannot restrict {n} cells by a factor {k}")
        shape += [n // k, k]
    return v.reshape(shape).mean(axis=tuple(range(1, 2 * v.ndim, 2)))


def grid_distance(coarse_coords, coarse: np.ndarray, fine_coords, fine: np.ndarray,
                  norm: str = "l1") -> float:
    r""":math:`L^1` (``"l1"``) or :math:`L^\infty` (``"linf"``) distance between two densities on
    nested grids, after restricting the finer one conservatively to the coarser."""
    if coarse_coords.ndim != fine_coords.ndim:
        raise ValueError("the grids have different dimensions")
    factors = []
    for a, b in zip(coarse_coords.axes, fine_coords.axes):
        k = b.cells // a.cells
        if (not math.isclose(a.lower, b.lower, abs_tol=1e-12 * (1 + abs(a.lower)))
                or not math.isclose(a.upper, b.upper, rel_tol=1e-12) or k * a.cells != b.cells):
            raise ValueError(f"grids are not nested: axis {a.name} {a.cells} cells on "
                             f"[{a.lower}, {a.upper}] vs {b.cells} on [{b.lower}, {b.upper}]")
        factors.append(k)
    r = restrict(np.asarray(fine).reshape(fine_coords.shape), factors)
    d = np.abs(np.asarray(coarse).reshape(coarse_coords.shape) - r)
    if norm == "l1":
        return float(d.sum() * coarse_coords.cell_volume)
    if norm == "linf":
        return float(d.max())
    raise ValueError(f"norm must be 'l1' or 'linf', got {norm!r}")


def curve_sup(t_a: np.ndarray, y_a: np.ndarray, t_b: np.ndarray, y_b: np.ndarray) -> float:
    r""":math:`\sup_t |y_a(t) - y_b(t)|` over the times of ``t_a`` inside the range of
    ``t_b`` (``y_b`` interpolated linearly)."""
    t_a, y_a, t_b, y_b = (np.asarray(v, dtype=float) for v in (t_a, y_a, t_b, y_b))
    inside = (t_a >= t_b.min() - 1e-12 * (1 + abs(t_b.min()))) & (t_a <= t_b.max() * (1 + 1e-12) + 1e-12)
    if not inside.any():
        raise ValueError("the two curves share no times")
    return float(np.max(np.abs(y_a[inside] - np.interp(t_a[inside], t_b, y_b))))


# --- the circle ----------------------------------------------------------------------------

def _circle_atoms(law: Law1D, refine: int) -> tuple[np.ndarray, np.ndarray]:
    e = law.edges
    h = np.diff(e)
    frac = (np.arange(refine) + 0.5) / refine
    x = (e[:-1, None] + h[:, None] * frac[None, :]).ravel()
    w = np.repeat(law.weights / refine, refine)
    return x, w


def wasserstein_circle(mu, nu, p: float = 1.0, period: float | None = None, refine: int = 16) -> float:
    r""":math:`W_p` on the circle of length ``period`` (default: the grid's length), by POT's
    ``ot.wasserstein_circle``; a grid density enters as ``refine`` equal atoms per cell
    (error :math:`\le h/(2\,\mathrm{refine})`)."""
    import ot

    laws = [as_law(mu), as_law(nu)]
    grid = next((law for law in laws if isinstance(law, Law1D)), None)
    if period is None:
        if grid is None:
            raise ValueError("period is needed for two empirical measures")
        period = grid.edges[-1] - grid.edges[0]
    origin = grid.edges[0] if grid is not None else 0.0
    xs, ws = [], []
    for law in laws:
        x, w = _circle_atoms(law, refine) if isinstance(law, Law1D) else (law.x, law.w)
        xs.append(np.mod((x - origin) / period, 1.0))
        ws.append(w)
    val = ot.wasserstein_circle(xs[0], xs[1], ws[0], ws[1], p=p)
    # POT returns the optimal cost, W_p^p on the unit circle
    return float(np.asarray(val).ravel()[0]) ** (1.0 / p) * period


def wasserstein_circle_w1(mu, nu, period: float | None = None) -> float:
    r"""Exact :math:`W_1` on the circle, :math:`\min_c\int |F_\mu - F_\nu - c|` (the minimiser
    is a weighted median of :math:`F_\mu - F_\nu`); laws on ``[a, a + period)``."""
    mu, nu = as_law(mu), as_law(nu)
    grid = next((law for law in (mu, nu) if isinstance(law, Law1D)), None)
    if grid is not None:
        a, b = grid.edges[0], grid.edges[-1]
    elif period is not None:
        a = min(mu.x.min(), nu.x.min())
        b = a + period
    else:
        raise ValueError("period is needed for two empirical measures")
    if period is not None:
        b = a + period
    pts = [np.array([a, b])]
    for law in (mu, nu):
        pts.append(law.edges if isinstance(law, Law1D) else law.x)
    x = np.unique(np.clip(np.concatenate(pts), a, b))
    # F_mu - F_nu is linear between these points (right-continuous at atoms)
    lo, hi = x[:-1], x[1:]
    dx = hi - lo
    d_lo = mu.cdf(lo) - nu.cdf(lo)
    d_hi = mu.cdf(np.nextafter(hi, -np.inf)) - nu.cdf(np.nextafter(hi, -np.inf))

    def cost(c: float) -> float:
        return _integral_abs_power(d_lo - c, d_hi - c, dx, 1.0)

    # the objective is convex and piecewise smooth in c; minimise on the breakpoints' range
    from scipy.optimize import minimize_scalar

    lo_c, hi_c = float(min(d_lo.min(), d_hi.min())), float(max(d_lo.max(), d_hi.max()))
    if hi_c - lo_c < 1e-15:
        return cost(lo_c)
    res = minimize_scalar(cost, bounds=(lo_c, hi_c), method="bounded",
                          options={"xatol": 1e-13 * max(1.0, hi_c - lo_c)})
    return float(min(res.fun, cost(lo_c), cost(hi_c)))


# --- two-dimensional grids -----------------------------------------------------------------

def _grid_cloud(coords, values: np.ndarray, refine: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.maximum(np.asarray(values, dtype=float).reshape(coords.shape), 0.0)
    occupied = np.argwhere(v > 0)
    frac = (np.arange(refine) + 0.5) / refine
    offsets = np.stack(np.meshgrid(*([frac] * coords.ndim), indexing="ij"), axis=-1).reshape(-1, coords.ndim)
    lower = np.array([a.lower for a in coords.axes])
    h = np.asarray(coords.spacing)
    pts = lower + (occupied[:, None, :] + offsets[None, :, :]) * h
    w = np.repeat(v[tuple(occupied.T)], offsets.shape[0])
    return pts.reshape(-1, coords.ndim), w / w.sum()


def wasserstein_2d(coords, values: np.ndarray, points: np.ndarray, p: float = 2.0,
                   method: str = "emd", refine: int = 1, n_projections: int = 200,
                   seed: int = 0, max_cost_entries: int = 4e7) -> float:
    r""":math:`W_p` between a density on a 2D grid and an empirical measure ``points``
    (shape ``(N, 2)``), by POT: ``method="emd"`` solves the exact discrete transport
    (``ot.emd2``) with the grid as a weighted cloud of ``refine``² atoms per occupied cell
    (atomisation error :math:`\le |h|/(2\,\mathrm{refine})`); ``"sliced"`` is the sliced
    :math:`W_p` with ``n_projections`` random directions (``ot.sliced_wasserstein_distance``).
    """
    import ot

    pts = np.asarray(points, dtype=float).reshape(-1, coords.ndim)
    cloud, w = _grid_cloud(coords, values, refine)
    a = np.full(pts.shape[0], 1.0 / pts.shape[0])
    if method == "sliced":
        return float(ot.sliced_wasserstein_distance(pts, cloud, a, w, n_projections=n_projections,
                                                    p=p, seed=seed))
    if method != "emd":
        raise ValueError(f"method must be 'emd' or 'sliced', got {method!r}")
    if pts.shape[0] * cloud.shape[0] > max_cost_entries:
        raise ValueError(f"exact transport between {pts.shape[0]} points and {cloud.shape[0]} atoms "
                         f"needs a {pts.shape[0]}x{cloud.shape[0]} cost matrix; use method='sliced'")
    M = ot.dist(pts, cloud, metric="euclidean") ** p
    return float(ot.emd2(a, w, M, numItermax=10_000_000)) ** (1.0 / p)


# --- sampling and the sampling floor -------------------------------------------------------

def sample_law(law: Law1D, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` i.i.d. points from a piecewise-constant density (inverse CDF)."""
    c, left, right = law.quantile_pieces()
    u = rng.random(n)
    return _eval_pieces((c, left, right), u, "right")


def sampling_floor(law: Law1D, n: int, metric=wasserstein, repeats: int = 20,
                   seed: int = 0, **kwargs) -> tuple[float, float]:
    r"""Mean and standard deviation over ``repeats`` draws of ``metric(sample, law)`` for
    i.i.d. samples of size ``n`` from ``law``: what :math:`N` exact samples of the PDE
    density score against it.

    Examples
    --------
    >>> law = Law1D(np.linspace(0, 1, 101), np.ones(100))
    >>> mean, sd = sampling_floor(law, 1000, repeats=10)
    >>> 0.005 < mean < 0.05
    True
    """
    rng = np.random.default_rng(seed)
    vals = np.array([metric(sample_law(law, n, rng), law, **kwargs) for _ in range(repeats)])
    return float(vals.mean()), float(vals.std(ddof=1)) if repeats > 1 else 0.0
