r"""Population risk of a finite two-layer network, exactly for Gaussian data.

The network is :math:`\hat y(x) = \frac1N\sum_i a_i\,\sigma(\langle w_i,x\rangle)` (``a = None``
means :math:`a_i\equiv1`) and the risk :math:`R = \mathbb{E}(y-\hat y)^2` of the empirical
measure :math:`\rho_N = \frac1N\sum_i\delta_{\theta_i}` is (Mei, Montanari & Nguyen, PNAS
2018, eq. (3))

.. math::

    R(\rho_N) = R_\# + \frac2N\sum_i V(\theta_i) + \frac1{N^2}\sum_{i,j}U(\theta_i,\theta_j),
    \qquad V(\theta) = -\mathbb{E}[y\,\sigma_*(x;\theta)],\quad
    U(\theta,\theta') = \mathbb{E}[\sigma_*(x;\theta)\sigma_*(x;\theta')],

the double sum *including* the diagonal :math:`i=j` (a finite network; the PDE's energy
has no self-interaction correction either, so :math:`R = R_\# + 2E`).

**Gaussian-mixture data** (:class:`~ddsolve.networks.data.GaussianMixtureData`). Given the class
:math:`c`, :math:`z_i = \langle w_i,x\rangle` are jointly centred Gaussian with
:math:`\mathrm{Cov}(z_i,z_j) = \sum_b s_{c,b}^2\langle w_{i,b},w_{j,b}\rangle`, so with
:math:`A_{ic}^2 = \mathrm{Var}\,z_i` and the correlation :math:`t_{ij}`,

.. math::

    V(\theta_i) = -a_i\sum_c\pi_c\,y_c\,g(A_{ic}),\qquad
    U_c(i,j) = a_ia_j\,\mathbb{E}[\sigma(A_{ic}Z)\,\sigma(A_{jc}Z_{t_{ij}})].

**Teacher data with Gaussian inputs** (:class:`~ddsolve.networks.data.TeacherData`,
``inputs="gaussian"``): one class with :math:`s\equiv1`; the teacher neurons enter as
extra neurons, :math:`V(\theta_i) = -\frac{a_i}{m}\sum_j a^*_j\,
\mathbb{E}[\sigma(\langle w^*_j,x\rangle)\sigma(\langle w_i,x\rangle)]`, and
:math:`R_\# = \mathbb{E}y^2` (label noise included) is
:attr:`~ddsolve.networks.data.TeacherData.risk_offset`. Spherical inputs have no exact formula
(use ``method="sample"``).

**Pair expectations** :math:`E(a,b,t) = \mathbb{E}[\sigma(aZ)\sigma(bZ_t)]`:

* the diagonal :math:`i=j` is :meth:`~ddsolve.networks.activations.Activation.second_moment`;
* otherwise Mehler's series :math:`\sum_k\hat c_k(a)\hat c_k(b)t^k`
  (:meth:`~ddsolve.networks.activations.Activation.hermite`), summed per pair until the Parseval
  tail bound :math:`|t|^{K+1}\sqrt{T_a(K)T_b(K)}`, :math:`T_a(K) = \sum_{k>K}\hat c_k(a)^2
  \le\mathbb{E}\sigma(aZ)^2`, is below ``1e-13`` :math:`\sqrt{\mathbb{E}\sigma(aZ)^2\,
  \mathbb{E}\sigma(bZ)^2}` (the tails are summed backwards from the largest order kept,
  plus the Parseval remainder and a rounding floor of :math:`10^{-15}\mathbb{E}\sigma^2`);
* piecewise-linear :math:`\sigma` (slowly decaying coefficients): pairs with
  :math:`|t| > 0.9`, or not converged by order 200, use the closed form below;
* smooth :math:`\sigma`: pairs not converged by order 256 get a second pass to order
  1024 (the coefficients of :math:`\sigma(aZ)` decay more slowly at large :math:`a`);
  what is left (very large scales and nearly aligned) goes to
  :func:`ddsolve.networks.reduction.correlated_expectation` (quadrature, ~1 ms per pair, accurate
  to ~1e-9 there; a warning is issued above 2000 such pairs).

**Closed form for piecewise-linear** :math:`\sigma(u) = \alpha_0+\beta_0u+\sum_j\Delta_j
(u-b_j)_+` (leftmost piece extended, slope jumps :math:`\Delta_j` at the breakpoints):
by Stein's lemma :math:`\mathbb{E}[X(Y-k)_+] = t\,\bar\Phi(k)` and, for standard normals
:math:`X, Y` with correlation :math:`t`, :math:`q = \sqrt{1-t^2}`,

.. math::

    \mathbb{E}[(X-h)_+(Y-k)_+] = (t + hk)\,L - k\,\varphi(h)\bar\Phi\Big(\frac{k-th}{q}\Big)
      - h\,\varphi(k)\bar\Phi\Big(\frac{h-tk}{q}\Big) + q^2\varphi_2(h,k;t),

with :math:`L = P(X>h, Y>k)` by Genz's algorithm (Drezner & Wesolowsky, J. Statist. Comput.
Simul. 35 (1990) 101–107, with Genz's double-precision modifications; error
:math:`\sim10^{-15}`) and :math:`\varphi_2` the bivariate density (at :math:`h=k=0` this is
the arc-cosine kernel :math:`(\sqrt{1-t^2} + (\pi-\arccos t)t)/2\pi`). Correlations are
clamped to :math:`|t|\le1-10^{-15}` there (the expectation is Lipschitz in :math:`t`).

``method="sample"`` is a Monte Carlo estimate on ``samples`` fresh draws of the data law
(a fixed seed unless ``rng`` is given). Cost of the exact risk at :math:`N = 800`,
:math:`d = 320` on 2 cores: ~0.1 s for MMN's isotropic data with the ramp (random
directions, short series), ~0.15 s for 800 neurons aligned with a ReLU teacher, ~0.9 s
when all :math:`3.2\cdot10^5` pairs need the ramp's closed form, ~0.25 s for 800 aligned
sigmoid neurons (second pass).
"""

from __future__ import annotations

import math
import warnings

import numba as nb
import numpy as np

from ddsolve.grid.quadrature import half_gauss_legendre
from ddsolve.networks.activations import Activation, PiecewiseLinear, correlated_expectation
from ddsolve.networks.data import DataLaw, GaussianMixtureData, TeacherData

__all__ = [
    "population_risk",
    "sample_risk",
    "neuron_potential",
    "interaction_matrix",
    "pair_expectations",
    "bivariate_upper",
    "RISK_METHODS",
]

RISK_METHODS = ("exact", "sample")
SERIES_TOL = 1e-13          # per-pair relative truncation bound of the Mehler series
KMAX_PIECEWISE = 200        # largest Hermite order for kinked activations
KMAX_SMOOTH = 256           # ... for smooth ones (fast decay except at large scales)
PIECEWISE_SERIES_MAX_T = 0.9  # piecewise-linear pairs with |t| above: closed form directly
_T_CLAMP = 1.0 - 1e-15
_SAMPLE_SEED = 20240611     # default seed of the Monte Carlo risk

_SQRT2PI = math.sqrt(2.0 * math.pi)
_TWOPI = 2.0 * math.pi

# Gauss-Legendre half rules (positive nodes, symmetric use) of Genz's BVNU: 6, 12, 20 points
(_GLX6, _GLW6), (_GLX12, _GLW12), (_GLX20, _GLW20) = (half_gauss_legendre(n) for n in (6, 12, 20))


# ---------------------------------------------------------------------------------------
# scalar kernels (compiled)
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _phi(x):
    return math.exp(-0.5 * x * x) / _SQRT2PI


@nb.njit(cache=True)
def _sf(x):
    """Normal survival function 1 - Phi(x)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


@nb.njit(cache=True)
def _bvnu(h, k, r):
    """P(X > h, Y > k) for standard normals with correlation r (Genz's BVNU)."""
    if r == 0.0:
        return _sf(h) * _sf(k)
    ar = abs(r)
    if ar < 0.3:
        w, x = _GLW6, _GLX6
    elif ar < 0.75:
        w, x = _GLW12, _GLX12
    else:
        w, x = _GLW20, _GLX20
    ng = w.size
    hk = h * k
    bvn = 0.0
    if ar < 0.925:
        hs = 0.5 * (h * h + k * k)
        asr = 0.5 * math.asin(r)
        for i in range(ng):
            for sgn in (-1.0, 1.0):
                sn = math.sin(asr * (1.0 + sgn * x[i]))
                bvn += w[i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        bvn = bvn * asr / _TWOPI + _sf(h) * _sf(k)
    else:
        if r < 0.0:
            k = -k
            hk = -hk
        if ar < 1.0:
            as_ = (1.0 - ar) * (1.0 + ar)
            a = math.sqrt(as_)
            bs = (h - k) ** 2
            c = (4.0 - hk) / 8.0
            d = (12.0 - hk) / 80.0
            asr = -0.5 * (bs / as_ + hk)
            if asr > -100.0:
                bvn = a * math.exp(asr) * (1.0 - c * (bs - as_) * (1.0 - d * bs) / 3.0
                                           + c * d * as_ * as_)
            if hk > -100.0:
                b = math.sqrt(bs)
                sp = math.sqrt(_TWOPI) * _sf(b / a)
                bvn -= math.exp(-0.5 * hk) * sp * b * (1.0 - c * bs * (1.0 - d * bs) / 3.0)
            a *= 0.5
            acc = 0.0
            for i in range(ng):
                for sgn in (-1.0, 1.0):
                    xs = (a * (1.0 + sgn * x[i])) ** 2
                    asr = -0.5 * (bs / xs + hk)
                    if asr > -100.0:
                        sp = 1.0 + c * xs * (1.0 + 5.0 * d * xs)
                        rs = math.sqrt(1.0 - xs)
                        ep = math.exp(-0.5 * hk * xs / (1.0 + rs) ** 2) / rs
                        acc += w[i] * math.exp(asr) * (sp - ep)
            bvn = (a * acc - bvn) / _TWOPI
        if r > 0.0:
            bvn += _sf(max(h, k))
        elif h >= k:
            bvn = -bvn
        else:
            if h < 0.0:
                L = _sf(-k) - _sf(-h)
            else:
                L = _sf(h) - _sf(k)
            bvn = L - bvn
    return min(1.0, max(0.0, bvn))


@nb.njit(cache=True)
def _relu_pair(h, k, t):
    """E[(X-h)_+ (Y-k)_+] for standard normals with correlation t, |t| < 1."""
    q2 = (1.0 - t) * (1.0 + t)
    q = math.sqrt(q2)
    L = _bvnu(h, k, t)
    A1 = _phi(h) * _sf((k - t * h) / q)
    A2 = _phi(k) * _sf((h - t * k) / q)
    # h^2 - 2thk + k^2 = (h-k)^2 + 2(1-t)hk (no cancellation for h ~ k, t ~ 1)
    Q = ((h - k) ** 2 + 2.0 * (1.0 - t) * h * k) / q2
    dens = q * math.exp(-0.5 * Q) / _TWOPI  # q^2 * phi_2(h, k; t)
    return (t + h * k) * L - k * A1 - h * A2 + dens


@nb.njit(cache=True)
def _pwl_mean(alpha0, beta0, bps, jumps, s):
    """E sigma(s Z) for s >= 0."""
    out = alpha0
    for j in range(bps.size):
        if s > 0.0:
            h = bps[j] / s
            out += jumps[j] * s * (_phi(h) - h * _sf(h))
        else:
            out += jumps[j] * max(-bps[j], 0.0)
    return out


@nb.njit(cache=True)
def _pwl_pair(alpha0, beta0, bps, jumps, a, b, t):
    r"""E[sigma(a X) sigma(b Y)], corr(X, Y) = t, for sigma = alpha0 + beta0 u +
    sum_j jumps_j (u - bps_j)_+, a, b >= 0."""
    if a == 0.0 or b == 0.0:
        s0a = alpha0
        for j in range(bps.size):
            s0a += jumps[j] * max(-bps[j], 0.0)  # sigma(0)
        if a == 0.0:
            return s0a * _pwl_mean(alpha0, beta0, bps, jumps, b)
        return s0a * _pwl_mean(alpha0, beta0, bps, jumps, a)
    t = min(_T_CLAMP, max(-_T_CLAMP, t))
    out = alpha0 * alpha0 + beta0 * beta0 * a * b * t
    nb_ = bps.size
    for l in range(nb_):
        k = bps[l] / b
        ey = _phi(k) - k * _sf(k)            # E (Y - k)_+
        out += jumps[l] * b * (alpha0 * ey + beta0 * a * t * _sf(k))
        h = bps[l] / a
        ex = _phi(h) - h * _sf(h)
        out += jumps[l] * a * (alpha0 * ex + beta0 * b * t * _sf(h))
    for j in range(nb_):
        h = bps[j] / a
        for l in range(nb_):
            k = bps[l] / b
            out += jumps[j] * jumps[l] * a * b * _relu_pair(h, k, t)
    return out


@nb.njit(cache=True)
def _series_one(c1, c2, st1, st2, i, j, tij, target):
    """Mehler series of one pair; returns (value, converged)."""
    s = 0.0
    tp = 1.0
    for k in range(c1.shape[1]):
        s += c1[i, k] * c2[j, k] * tp
        tp *= tij
        if abs(tp) * st1[i, k] * st2[j, k] <= target:
            return s, True
    return s, False


@nb.njit(cache=True, parallel=True)
def _series_pairs(c1, c2, st1, st2, sm1, sm2, t, symmetric, tol, t_skip, out, flag):
    """Mehler series per pair, ``flag[i, j] = True`` where the tail bound is not met by the
    highest order available or ``|t| > t_skip``. ``c``: (n, K+1) coefficients, ``st[i, k]``
    the square root of a bound on sum_{l > k} c_l(i)^2, ``sm`` root second moments.
    Symmetric: upper triangle only (mirrored), rows paired i, n-1-i for load balance."""
    n1, n2 = t.shape
    rows = (n1 + 1) // 2 if symmetric else n1
    for r_ in nb.prange(rows):
        r = np.int64(r_)
        for half in range(2 if symmetric else 1):
            i = r if half == 0 else np.int64(n1 - 1) - r
            if half == 1 and i == r:
                continue
            j0 = i + 1 if symmetric else 0
            for j in range(j0, n2):
                tij = t[i, j]
                if abs(tij) > t_skip:
                    v, ok = 0.0, False
                else:
                    v, ok = _series_one(c1, c2, st1, st2, i, j, tij, tol * sm1[i] * sm2[j])
                out[i, j] = v
                flag[i, j] = not ok
                if symmetric:
                    out[j, i] = v
                    flag[j, i] = not ok


@nb.njit(cache=True, parallel=True)
def _series_list(c1, c2, st1, st2, sm1, sm2, r1, r2, I, J, t, tol, out, flag, symmetric):
    """The series for the listed pairs ``(I[n], J[n])``; neuron ``i`` has row ``r1[i]``
    of ``c1`` (and ``j`` row ``r2[j]`` of ``c2``)."""
    for n in nb.prange(I.size):
        i, j = I[n], J[n]
        v, ok = _series_one(c1, c2, st1, st2, r1[i], r2[j], t[i, j], tol * sm1[r1[i]] * sm2[r2[j]])
        if ok:
            out[i, j] = v
            flag[i, j] = False
            if symmetric:
                out[j, i] = v
                flag[j, i] = False


@nb.njit(cache=True, parallel=True)
def _pwl_fill(alpha0, beta0, bps, jumps, A1, A2, t, I, J, out, symmetric):
    for n in nb.prange(I.size):
        i, j = I[n], J[n]
        v = _pwl_pair(alpha0, beta0, bps, jumps, A1[i], A2[j], t[i, j])
        out[i, j] = v
        if symmetric:
            out[j, i] = v


# ---------------------------------------------------------------------------------------
# vectorised front ends
# ---------------------------------------------------------------------------------------
def bivariate_upper(h, k, t) -> np.ndarray:
    """:math:`P(X>h, Y>k)` for standard normals with correlation ``t`` (broadcasting)."""
    h, k, t = np.broadcast_arrays(*(np.asarray(v, float) for v in (h, k, t)))
    out = np.empty(h.shape)
    for idx in np.ndindex(h.shape):
        out[idx] = _bvnu(float(h[idx]), float(k[idx]), float(t[idx]))
    return out


def _pwl_params(act: PiecewiseLinear):
    return (float(act.alpha[0]), float(act.slopes[0]),
            np.ascontiguousarray(act.breakpoints, float), np.ascontiguousarray(act.jumps, float))


def _hermite_with_tails(act: Activation, A: np.ndarray, kmax: int):
    """Coefficients (n, kmax+1), square roots of the tail bounds (n, kmax+1) and root
    second moments (n,)."""
    c = np.asarray(act.hermite(A, kmax), float)
    m = np.asarray(act.second_moment(A), float).reshape(A.shape)
    c2 = c * c
    beyond = m - c2.sum(axis=0)                      # Parseval remainder past kmax
    floor = 1e-15 * m + 1e-300
    back = np.cumsum(c2[::-1], axis=0)[::-1]         # back[k] = sum_{l >= k} c_l^2
    tail = np.empty_like(c)
    tail[:-1] = back[1:]
    tail[-1] = 0.0
    tail += np.maximum(beyond, 0.0) + floor
    return (np.ascontiguousarray(c.T), np.ascontiguousarray(np.sqrt(tail).T),
            np.sqrt(np.maximum(m, 1e-300)))


def _second_pass(act, A1, A2, t, I, J, kmax, symmetric, out, flag):
    """Rerun the series to order ``kmax`` on the pairs ``(I, J)``; returns the pairs still
    not converged."""
    u1 = np.unique(np.concatenate([I, J]) if symmetric else I)
    r1 = np.full(A1.size, -1, dtype=np.int64)
    r1[u1] = np.arange(u1.size)
    c1, st1, sm1 = _hermite_with_tails(act, A1[u1], kmax)
    if symmetric:
        r2, c2, st2, sm2 = r1, c1, st1, sm1
    else:
        u2 = np.unique(J)
        r2 = np.full(A2.size, -1, dtype=np.int64)
        r2[u2] = np.arange(u2.size)
        c2, st2, sm2 = _hermite_with_tails(act, A2[u2], kmax)
    _series_list(c1, c2, st1, st2, sm1, sm2, r1, r2, I.astype(np.int64), J.astype(np.int64), t,
                 SERIES_TOL, out, flag, symmetric)
    keep = flag[I, J]
    return I[keep], J[keep]


def pair_expectations(act: Activation, A1, A2, cov, *, symmetric: bool = False,
                      kmax: int | None = None) -> np.ndarray:
    r""":math:`\mathbb{E}[\sigma(z_i)\sigma(z'_j)]` for centred jointly Gaussian
    :math:`z_i, z'_j` with standard deviations ``A1[i]``, ``A2[j]`` and covariance
    ``cov[i, j]``, shape ``(n1, n2)``. With ``symmetric`` (``A1 is A2``, ``cov`` the
    covariance matrix of one family) the diagonal is the exact second moment."""
    A1 = np.ascontiguousarray(A1, float)
    A2 = A1 if symmetric else np.ascontiguousarray(A2, float)
    cov = np.asarray(cov, float)
    n1, n2 = A1.size, A2.size
    if cov.shape != (n1, n2):
        raise ValueError(f"cov needs shape ({n1}, {n2}), got {cov.shape}")
    pwl = isinstance(act, PiecewiseLinear)
    if kmax is None:
        kmax = KMAX_PIECEWISE if pwl else KMAX_SMOOTH
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cov / np.outer(A1, A2)
    t = np.where(np.outer(A1 > 0, A2 > 0), np.clip(t, -1.0, 1.0), 0.0)
    t = np.ascontiguousarray(t)
    c1, tail1, m1 = _hermite_with_tails(act, A1, kmax)
    if symmetric:
        c2, tail2, m2 = c1, tail1, m1
    else:
        c2, tail2, m2 = _hermite_with_tails(act, A2, kmax)
    out = np.empty((n1, n2))
    flag = np.zeros((n1, n2), dtype=np.bool_)
    t_skip = PIECEWISE_SERIES_MAX_T if pwl else 2.0
    _series_pairs(c1, c2, tail1, tail2, m1, m2, t, symmetric, SERIES_TOL, t_skip, out, flag)
    if symmetric:
        np.fill_diagonal(out, act.second_moment(A1))
        np.fill_diagonal(flag, False)
        I, J = np.nonzero(np.triu(flag, 1))
    else:
        I, J = np.nonzero(flag)
    if I.size and not pwl:
        # smooth activations: the coefficients decay fast but slower at large scales;
        # a second pass to order 4 kmax for the neurons of the pairs left over
        I, J = _second_pass(act, A1, A2, t, I, J, 4 * kmax, symmetric, out, flag)
    if I.size:
        if pwl:
            _pwl_fill(*_pwl_params(act), A1, A2, t, I.astype(np.int64), J.astype(np.int64), out, symmetric)
        else:
            if I.size > 2000:
                warnings.warn(f"exact risk: {I.size} nearly aligned neuron pairs need quadrature "
                              f"(~1 ms each) for {act.name}; method='sample' is faster",
                              RuntimeWarning, stacklevel=3)
            step = 256
            for s in range(0, I.size, step):
                ii, jj = I[s:s + step], J[s:s + step]
                v = correlated_expectation(act, A1[ii], A2[jj], t[ii, jj])
                out[ii, jj] = v
                if symmetric:
                    out[jj, ii] = v
    return out


# ---------------------------------------------------------------------------------------
# the risk
# ---------------------------------------------------------------------------------------
def _check(data: DataLaw, w, a):
    w = np.asarray(w, dtype=float)
    if w.ndim != 2 or w.shape[1] != data.dim:
        raise ValueError(f"w must have shape (N, {data.dim}), got {w.shape}")
    if a is not None:
        a = np.asarray(a, dtype=float).ravel()
        if a.shape != (w.shape[0],):
            raise ValueError(f"a must have shape ({w.shape[0]},), got {a.shape}")
    return w, a


def _exact_supported(data: DataLaw):
    if isinstance(data, GaussianMixtureData):
        return
    if isinstance(data, TeacherData):
        if data.inputs != "gaussian":
            raise ValueError("the exact risk needs Gaussian inputs; teacher data with "
                             "inputs='sphere' supports method='sample' only")
        return
    raise ValueError(f"no exact risk for data law {type(data).__name__}; use method='sample'")


def neuron_potential(data: DataLaw, activation: Activation, w, a=None) -> np.ndarray:
    r""":math:`V(\theta_i) = -\mathbb{E}[y\,\sigma_*(x;\theta_i)]`, shape ``(N,)``."""
    w, a = _check(data, w, a)
    _exact_supported(data)
    if isinstance(data, GaussianMixtureData):
        std = data.feature_std()                           # (C, d)
        A = np.sqrt((w * w) @ (std * std).T)               # (N, C)
        v = -(activation.gaussian_mean(0.0, A) @ (data.probs * data.labels))
    else:
        T = data.weights
        cov = T @ w.T                                      # (m, N)
        E = pair_expectations(activation, np.linalg.norm(T, axis=1), np.linalg.norm(w, axis=1), cov)
        v = -(data.second_layer @ E) / T.shape[0]
    return v if a is None else a * v


def interaction_matrix(data: DataLaw, activation: Activation, w, a=None) -> np.ndarray:
    r""":math:`U(\theta_i,\theta_j) = \mathbb{E}[\sigma_*(x;\theta_i)\sigma_*(x;\theta_j)]`,
    shape ``(N, N)``."""
    w, a = _check(data, w, a)
    _exact_supported(data)
    if isinstance(data, GaussianMixtureData):
        std = data.feature_std()
        U = np.zeros((w.shape[0], w.shape[0]))
        for pc, sc in zip(data.probs, std):
            ws = w * sc
            U += pc * pair_expectations(activation, np.linalg.norm(ws, axis=1), None, ws @ ws.T,
                                        symmetric=True)
    else:
        U = pair_expectations(activation, np.linalg.norm(w, axis=1), None, w @ w.T, symmetric=True)
    return U if a is None else U * np.outer(a, a)


def sample_risk(data: DataLaw, activation: Activation, w, a=None, *, rng=None,
                samples: int = 10_000, chunk: int = 4096) -> tuple[float, float]:
    """Monte Carlo risk on ``samples`` fresh draws: ``(mean, standard error)``."""
    w, a = _check(data, w, a)
    if rng is None:
        rng = np.random.default_rng(_SAMPLE_SEED)
    N = w.shape[0]
    total = total2 = 0.0
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        x, y = data.sample(n, rng)
        s = activation(x @ w.T)
        yhat = (s @ a if a is not None else s.sum(axis=1)) / N
        e2 = (y - yhat) ** 2
        total += float(e2.sum())
        total2 += float((e2 * e2).sum())
        done += n
    mean = total / samples
    var = max(total2 / samples - mean * mean, 0.0)
    return mean, math.sqrt(var / max(samples - 1, 1))


def population_risk(data: DataLaw, activation: Activation, w, a=None, *, method: str = "exact",
                    rng=None, samples: int = 10_000) -> float:
    r"""Population risk :math:`\mathbb{E}(y-\hat y(x))^2` of the network with first-layer
    weights ``w`` (rows :math:`w_i`, shape ``(N, d)``) and output weights ``a`` (``None``:
    all ones).

    ``method="exact"``: :math:`R_\# + \frac2N\sum_iV(\theta_i) + \frac1{N^2}\sum_{ij}
    U(\theta_i,\theta_j)` (module doc; Gaussian-mixture data and Gaussian-input teacher
    data). ``method="sample"``: Monte Carlo mean over ``samples`` draws from ``rng``
    (default: a fixed seed, so repeated calls use the same held-out sample).
    """
    if method not in RISK_METHODS:
        raise ValueError(f"method must be one of {RISK_METHODS}, got {method!r}")
    w, a = _check(data, w, a)
    if method == "sample":
        return sample_risk(data, activation, w, a, rng=rng, samples=samples)[0]
    N = w.shape[0]
    V = neuron_potential(data, activation, w, a)
    U = interaction_matrix(data, activation, w, a)
    return float(data.risk_offset + 2.0 * V.sum() / N + U.sum() / N**2)
