r"""Finite-N two-layer networks trained by SGD: the real network, full vectors :math:`w_i\in\mathbb{R}^d`.

Network and update
------------------
:math:`\hat y(x) = \frac1N\sum_{i=1}^N\sigma_*(x;\theta_i)` with
:math:`\sigma_*(x;\theta) = \sigma(\langle w,x\rangle)` (:math:`\theta = w`) or
:math:`a\,\sigma(\langle w,x\rangle)` (:math:`\theta = (w, a)`, ``train_a=True``). Online
SGD in the normalisation of Mei, Montanari & Nguyen (PNAS 2018, eq. (2)): at step
:math:`k` draw :math:`(x_k, y_k)` and set

.. math:: \theta_i \leftarrow \theta_i + 2s_k\,(y_k - \hat y_k)\,\nabla_\theta\sigma_*(x_k;\theta_i),
          \qquad s_k = \varepsilon\,\xi_{\rm MMN}(k\varepsilon) = \varepsilon\,\xi(k\varepsilon)/2,

with ddsolve's schedule :math:`\xi = 2\xi_{\rm MMN}` (default constant 2, i.e.
:math:`\xi_{\rm MMN}\equiv1`; :mod:`ddsolve.problems.two_layer`). Step :math:`k` uses the
state's step counter :math:`k` *before* the step, and PDE time is :math:`t = k\varepsilon`
(``dt = eps``). As :math:`N\to\infty`, :math:`\varepsilon\to0` the empirical measure
follows :math:`\partial_t\rho = \xi\nabla\cdot(\rho\nabla\Psi)`,
:math:`\Psi = V + \int U\rho`, ddsolve's PDE.

* **Mini-batch** (``batch = B > 1``):
  :math:`\theta_i \mathrel{+}= 2s_k\frac1B\sum_b(y_b-\hat y_b)\nabla_\theta\sigma_*(x_b;\theta_i)`
  (same PDE; the batch only reduces the SGD noise).
* **Noisy SGD** (``beta`` :math:`=\beta<\infty`): after the gradient step every coordinate
  of every :math:`\theta_i` receives independent :math:`N(0, 4s_k/\beta)` noise. *Why
  4s_k/β.* The drift of one step is :math:`-2s_k\nabla\Psi = -\xi(t)\nabla\Psi\,\varepsilon`
  (because :math:`\mathbb{E}[(y-\hat y)\nabla\sigma_*] = -\nabla\Psi(\theta)`, :math:`\Psi =
  V + \int U\rho_N`). ddsolve's PDE :math:`\partial_t\rho = \xi\nabla\cdot(\rho\nabla\Psi) +
  \xi\beta^{-1}\Delta\rho` is the Fokker–Planck equation of
  :math:`d\theta = -\xi\nabla\Psi\,dt + \sqrt{2\xi/\beta}\,dB`, whose increment over
  :math:`dt = \varepsilon` has variance :math:`2\xi\varepsilon/\beta = 4s_k/\beta`. In
  MMN's notation this is :math:`\partial_t\rho = 2\xi_{\rm MMN}\nabla\cdot(\rho\nabla\Psi) +
  2\xi_{\rm MMN}\beta^{-1}\Delta\rho`. Papers differ by factors of 2 in both the step
  and the temperature; the convention here is fixed by the PDE: its stationary states
  are :math:`\rho\propto e^{-\beta\Psi[\rho]}` (free energy :math:`R/2 - \beta^{-1}S`), and
  the rule is "noise variance per step = 2 x (drift coefficient per step) / beta", the
  drift coefficient being :math:`2s_k`. (E.g. lecture notes on the mean-field theory of neural networks pair a drift
  :math:`-\varepsilon\nabla\Psi` with noise :math:`\sqrt{\varepsilon/B}\,g` and write
  :math:`B^{-1}\Delta\rho`; by the rule that noise is :math:`\beta = 2B` here, i.e.
  :math:`(2B)^{-1}\Delta\rho`.) A check: one neuron, :math:`\sigma(t) = t`, :math:`y = 0`,
  :math:`x\sim N(0,I_d)` gives :math:`\Psi = |w|^2/2` and the exact stationary variance of
  the recursion per coordinate is :math:`1/(\beta(1 - s(d+2)))\to1/\beta`.
* **Dropout** (``dropout = p < 1``, the keep probability; seed document 000, topic 2:
  "randomly turning off some neurons at every optimisation step"): at each step every
  neuron is kept independently, :math:`m_i\sim\mathrm{Bernoulli}(p)`, the output is the
  inverted-dropout network :math:`\hat y = \frac1{pN}\sum_i m_i\sigma_*(x;\theta_i)` and the
  update is the gradient of that network's loss in the same normalisation,

  .. math:: \theta_i \leftarrow \theta_i + 2s_k\,\frac{m_i}{p}\,(y_k-\hat y_k)\,\nabla_\theta\sigma_*(x_k;\theta_i),

  so dropped neurons do not move (noise, if any, still acts on them). Since
  :math:`\mathbb{E}[m_i/p] = 1` and :math:`\hat y - \frac1N\sum_i\sigma_* = O(N^{-1/2})`, the
  mean-field limit (fixed :math:`p`, :math:`N\to\infty`, :math:`\varepsilon\to0`) is *the
  same PDE* as plain SGD: dropout only adds zero-mean noise of order one per step, which
  averages out like the SGD noise (its effect is in the fluctuations, the seed's topic
  2a). Dropping the factor :math:`1/p` in the update would instead slow time down by
  :math:`p`. ``dropout = 1`` draws no masks and reproduces plain SGD bit for bit.

Implementation
--------------
The cost is two :math:`N\times d` passes per sample (the products :math:`\langle w_i,x\rangle`
and the rank-one update), i.e. :math:`2Nd` multiply-adds — ~0.5 M at :math:`N = 800`,
:math:`d = 320`. A per-step loop streams the 2 MB of weights twice per step from cache;
instead the steps run in blocks of ``block`` steps (:math:`M` = ``block * batch``
samples), *exactly* (up to rounding), the weights being touched twice per block by
matrix products (BLAS ``dgemm`` at ~50 GFLOP/s per core here):

* :math:`P = XW^\top` and the Gram matrix :math:`G = XX^\top` of the block's samples;
* walking through the block, the pre-activations of sample :math:`m` are
  :math:`z_{m} = P_{m} + \sum_{m'} G_{mm'}C_{m'}` over the samples :math:`m'` of earlier
  steps (:math:`C_{m'}\in\mathbb{R}^N` their update coefficients
  :math:`2s_k(y-\hat y)a_i\sigma'(z_{m',i})/B`): inside a sub-block of ``sub`` steps by a
  loop in the kernel, from earlier sub-blocks by one matrix product per sub-block; the
  kernel evaluates :math:`\sigma,\sigma'`, :math:`\hat y`, :math:`C_m` and updates :math:`a`;
* :math:`W \mathrel{+}= C^\top X` (``dgemm`` with :math:`\beta = 1`, in place).

Everything between drawing the data and the returned weights is one compiled function
(``nogil``) calling scipy's Fortran BLAS (``scipy.linalg.cython_blas.dgemm``, whose ctypes
pointer is passed as an argument so the function is cached); the thread count is
OpenBLAS's (``OPENBLAS_NUM_THREADS``). Measured on this shared 2-vCPU machine
(``benchmarks/bench_sgd.py``, MMN's setting N = 800, d = 320, 2 BLAS threads): 21–29 µs
per step depending on the machine's load, of which ~6 µs are ``data.sample`` (15–20 µs
on pre-drawn data), against 600–900 µs for a NumPy per-step loop.

Noisy SGD keeps this structure: with :math:`S^k` the noise accumulated before step
:math:`k` of the block, only :math:`S^K` (the block's total, :math:`N\times d` normals) and the
projections :math:`\langle S^k_i, x_m\rangle` enter. They are drawn exactly from their joint
law: :math:`S^k = (\tau_k/T)S^K + B^k` with the Brownian bridge :math:`B` in the variance
clock :math:`\tau_k = \sum_{j<k}4s_j/\beta`, :math:`T = \tau_K`, and
:math:`\mathrm{Cov}(\langle B^k_i,x_m\rangle,\langle B^{k'}_i,x_{m'}\rangle) =
(\min(\tau_k,\tau_{k'}) - \tau_k\tau_{k'}/T)\,G_{mm'}`. The chain observed at block ends is
the same Markov chain in law as adding :math:`N(0, 4s_k/\beta)` per step, at
:math:`Nd/K` instead of :math:`Nd` normals per step (not the same realisation).

Random numbers. The data and the dropout uniforms of the steps
``c*chunk .. (c+1)*chunk - 1`` come from their own generator, ``default_rng([key, c])``
with ``key`` drawn once by :meth:`initial_state` (kept in ``state.extra["data_stream"]``):
the data, then (``dropout < 1``) a ``(chunk, N)`` array of uniforms (kept iff ``< p``).
So without noise the trajectory does not depend on how the steps are split between
:meth:`advance` calls (snapshot times do not change a run), nor on ``block`` or ``sub``
beyond rounding. The noise (``beta < inf``) is drawn from the generator passed to
:meth:`advance`, per block of the call: ``S`` as an ``(N, d)`` standard normal array, the
bridge as a ``((K-1) B, N)`` one and, with ``train_a``, the output-weight noise as
``(K, N)``; noisy trajectories therefore also depend on the call lengths and ``block``
(their law does not). ``prefetch`` draws the same numbers in a helper thread. A call cut
at a block boundary of its own pieces (:meth:`TwoLayerSGD.split_point`) takes the same
steps and draws bit for bit, which is how the runner pauses a run for Ctrl-C and
checkpoints without changing it.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np
from numba.extending import get_cython_function_address

from ddsolve.model.schedule import Schedule, schedule_value
from ddsolve.networks.activations import Activation, PiecewiseLinear, Sigmoid, Tanh
from ddsolve.networks.data import DataLaw, GaussianMixtureData, TeacherData

from .base import Dynamics, ParticleFailure, ParticleState
from .risk import population_risk

__all__ = ["TwoLayerSGD", "encode_activation", "RISK_MODES"]

RISK_MODES = ("exact", "sample", "none")
_PWL, _SIGMOID, _TANH = 0, 1, 2
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf
_RISK_SEED = 2_718_281


# ---------------------------------------------------------------------------------------
# activations inside numba
# ---------------------------------------------------------------------------------------
def encode_activation(act: Activation) -> tuple[int, np.ndarray]:
    """``(kind, params)`` for the compiled kernels.

    * piecewise linear: ``[n, b_1..b_n, alpha_0, beta_0, Delta_1..Delta_n]`` with
      :math:`\\sigma(t) = \\alpha_0 + \\beta_0 t + \\sum_j\\Delta_j(t-b_j)_+` (the leftmost
      piece extended; :math:`\\sigma'` takes the right slope at a breakpoint, as
      :meth:`~ddsolve.networks.activations.PiecewiseLinear.derivative`);
    * sigmoid: ``[rate]``; tanh: ``[]``.
    """
    if isinstance(act, PiecewiseLinear):
        n = act.breakpoints.size
        p = np.concatenate([[n], act.breakpoints, [act.alpha[0], act.slopes[0]], act.jumps])
        return _PWL, np.ascontiguousarray(p, dtype=float)
    if isinstance(act, Sigmoid):
        return _SIGMOID, np.array([act.rate], dtype=float)
    if isinstance(act, Tanh):
        return _TANH, np.zeros(1)
    raise ValueError(f"activation {act!r} cannot be evaluated in the compiled SGD kernels; "
                     "supported: PiecewiseLinear (relu, mmn-ramp, mmn-nonmonotone, ...), "
                     "Sigmoid(rate), Tanh")


@nb.njit(cache=True)
def _finite(buf):
    """Whether ``buf[0]`` is finite, from its exponent bits (LLVM folds a floating-point
    ``isfinite`` of a value computed with nsz + reassoc fast-math to True)."""
    return ((buf.view(np.int64)[0] >> 52) & 0x7FF) != 0x7FF


@nb.njit(cache=True, fastmath=_FASTMATH)
def _activate(kind, p, z, sig, dsig):
    """sigma(z) and sigma'(z) elementwise into sig, dsig."""
    n = z.size
    if kind == 0:
        nbk = int(p[0])
        a0 = p[1 + nbk]
        b0 = p[2 + nbk]
        for i in range(n):
            sig[i] = a0 + b0 * z[i]
            dsig[i] = b0
        for j in range(nbk):
            bj = p[1 + j]
            dj = p[3 + nbk + j]
            for i in range(n):
                u = z[i] - bj
                if u >= 0.0:
                    sig[i] += dj * u
                    dsig[i] += dj
    elif kind == 1:
        h = 0.5 * p[0]
        for i in range(n):
            s = 0.5 * (1.0 + math.tanh(h * z[i]))
            sig[i] = s
            dsig[i] = p[0] * s * (1.0 - s)
    else:
        for i in range(n):
            s = math.tanh(z[i])
            sig[i] = s
            dsig[i] = 1.0 - s * s


@nb.njit(cache=True)
def _step_coefficients(code, params, k0, n, eps):
    """eps * xi(k eps) for k = k0 .. k0 + n - 1 (= 2 s_k)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = eps * schedule_value(code, params, (k0 + k) * eps)
    return out


# ---------------------------------------------------------------------------------------
# the block kernel
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _block(P, G, Y, a, C, coef, B, kind, ap, mask, train_a, anoise):
    """Run the K = len(coef) steps of one block.

    P (M, N): <w_i, x_m> at the block start (+ noise projections); G (M, M) Gram matrix;
    Y (M,) labels; a (N,) output weights (updated in place when train_a; ones otherwise);
    C (M, N) output: W += C^T X afterwards; coef (K,) = 2 s_k / B; mask (K, N) = m_i / p
    (size 0: no dropout); anoise (K, N) noise on a (size 0: none).
    Returns the number of steps completed (< K if the prediction became non-finite).
    """
    M, N = P.shape
    K = coef.size
    z = np.empty(N)
    sig = np.empty(N)
    dsig = np.empty(N)
    da = np.zeros(N)
    check = np.empty(1)
    use_mask = mask.shape[0] > 0
    use_anoise = anoise.shape[0] > 0
    invN = 1.0 / N
    for k in range(K):
        for b in range(B):
            m = k * B + b
            for i in range(N):
                z[i] = P[m, i]
            for mp in range(k * B):
                g = G[m, mp]
                for i in range(N):
                    z[i] += g * C[mp, i]
            _activate(kind, ap, z, sig, dsig)
            s = 0.0
            if use_mask:
                for i in range(N):
                    s += mask[k, i] * a[i] * sig[i]
            else:
                for i in range(N):
                    s += a[i] * sig[i]
            r = Y[m] - s * invN
            check[0] = r
            if not _finite(check):
                return k
            cr = coef[k] * r
            if use_mask:
                for i in range(N):
                    C[m, i] = cr * mask[k, i] * a[i] * dsig[i]
                if train_a:
                    for i in range(N):
                        da[i] += cr * mask[k, i] * sig[i]
            else:
                for i in range(N):
                    C[m, i] = cr * a[i] * dsig[i]
                if train_a:
                    for i in range(N):
                        da[i] += cr * sig[i]
        if train_a:
            for i in range(N):
                a[i] += da[i]
                da[i] = 0.0
            if use_anoise:
                for i in range(N):
                    a[i] += anoise[k, i]
    return K


# ---------------------------------------------------------------------------------------
# BLAS from compiled code
# ---------------------------------------------------------------------------------------
# scipy's Fortran dgemm, called from nopython code (with the GIL released). The ctypes
# function is passed as an argument, so the callers can be cached.
_VP = ctypes.c_void_p
DGEMM = ctypes.CFUNCTYPE(None, *([_VP] * 13))(
    get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))


@nb.njit(cache=True, nogil=True)
def _gemm(f, ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc):
    """Column-major C (m x n) = op(A) op(B) + beta C; ``ta``/``tb`` 0 ('N') or 1 ('T')."""
    if m == 0 or n == 0:
        return
    chars = np.empty(2, dtype=np.uint8)
    chars[0] = 84 if ta else 78
    chars[1] = 84 if tb else 78
    ints = np.empty(6, dtype=np.int32)
    ints[0], ints[1], ints[2] = m, n, k
    ints[3], ints[4], ints[5] = max(lda, 1), max(ldb, 1), max(ldc, 1)
    dbl = np.empty(2)
    dbl[0], dbl[1] = 1.0, beta
    f(chars[0:].ctypes, chars[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
      dbl[0:].ctypes, A.ctypes, ints[3:].ctypes, B.ctypes, ints[4:].ctypes, dbl[1:].ctypes,
      C.ctypes, ints[5:].ctypes)


# Row-major products on arrays whose rows are contiguous (views allowed): a row-major
# (r x c) matrix with row stride ld is the column-major (c x r) matrix with leading dimension ld.
@nb.njit(cache=True, nogil=True)
def _mm_abt(f, A, B, out, beta):
    """out = A @ B.T + beta out; A (m, k), B (n, k)."""
    _gemm(f, 1, 0, B.shape[0], A.shape[0], A.shape[1], B, B.strides[0] // 8, A, A.strides[0] // 8,
          beta, out, out.strides[0] // 8)


@nb.njit(cache=True, nogil=True)
def _mm_atb(f, A, B, out, beta):
    """out = A.T @ B + beta out; A (k, m), B (k, n)."""
    _gemm(f, 0, 1, B.shape[1], A.shape[1], A.shape[0], B, B.strides[0] // 8, A, A.strides[0] // 8,
          beta, out, out.strides[0] // 8)


@nb.njit(cache=True, nogil=True)
def _mm_ab(f, A, B, out, beta):
    """out = A @ B + beta out; A (m, k), B (k, n)."""
    _gemm(f, 0, 0, B.shape[1], A.shape[0], A.shape[1], B, B.strides[0] // 8, A, A.strides[0] // 8,
          beta, out, out.strides[0] // 8)


@nb.njit(cache=True)
def _sqrt_factor(S):
    """L with L L^T = S for positive semi-definite S: Cholesky, or a clipped
    eigendecomposition if S is numerically singular."""
    try:
        return np.linalg.cholesky(S)
    except Exception:  # noqa: BLE001 - numba raises a generic LinAlgError here
        lam, V = np.linalg.eigh(S)
        return V * np.sqrt(np.maximum(lam, 0.0))


@nb.njit(cache=True, nogil=True)
def _run_chunk(f, W, a, X, Y, coef, B, block, sub, kind, ap, mask, train_a, inv_beta,
               Zs, zetas, ans, k0):
    """All steps of one chunk. W (N, d) C-contiguous, a (N,), X (n B, d), Y (n B,), coef (n,)
    = 2 s_k, mask (n, N) = m_i / p or (0, N); noise (``Zs.shape[0] > 0``): per block the
    standard normals Zs[j] (N, d), zetas[j] ((K-1) B, N), ans[j] (K, N) (if train_a).
    Returns -1, or the global index of the step whose prediction was not finite."""
    N, d = W.shape
    n = coef.size
    noisy = Zs.shape[0] > 0
    Mmax = block * B
    P = np.empty((Mmax, N))
    G = np.zeros((Mmax, Mmax))
    C = np.empty((Mmax, N))
    empty = np.empty((0, N))
    nblocks = (n + block - 1) // block
    for jb in range(nblocks):
        s0 = jb * block
        K = min(block, n - s0)
        M = K * B
        Xb = X[s0 * B:s0 * B + M]
        Yb = Y[s0 * B:s0 * B + M]
        Pb = P[:M]
        Cb = C[:M]
        _mm_abt(f, Xb, W, Pb, 0.0)                       # P = X W^T
        for u0 in range(0, K, sub):                      # the Gram rows needed: G[r0:r1, :r1]
            r0, r1 = u0 * B, min(K, u0 + sub) * B
            _mm_abt(f, Xb[r0:r1], Xb[:r1], G[r0:r1, :r1], 0.0)
        cb = coef[s0:s0 + K] / B
        anoise = empty
        S = empty
        if noisy:
            var = 2.0 * coef[s0:s0 + K] * inv_beta           # 4 s_k / beta per step
            tau = np.zeros(K + 1)
            for k in range(K):
                tau[k + 1] = tau[k] + var[k]
            T = tau[K]
            if not T * T < math.inf:                         # the noise overflows (or is NaN)
                return k0 + s0
            S = Zs[jb]
            S *= math.sqrt(T)                                # the block's total noise
            if K > 1:
                Mp = M - B
                Sig = np.empty((Mp, Mp))
                for i in range(Mp):
                    ti = tau[1 + i // B]
                    for j in range(Mp):
                        tj = tau[1 + j // B]
                        g = G[B + max(i, j), B + min(i, j)]
                        Sig[i, j] = (min(ti, tj) - ti * tj / T) * g
                if not np.all(np.isfinite(Sig)):                # numba cannot re-raise in
                    return k0 + s0                               # _sqrt_factor's except
                L = _sqrt_factor(Sig)
                _mm_ab(f, L, zetas[jb, :Mp], Pb[B:], 1.0)   # bridge projections
                Q = Cb[B:]                                   # scratch: <S^K, x_m>
                _mm_abt(f, Xb[B:], S, Q, 0.0)
                for i in range(Mp):
                    w_ = tau[1 + i // B] / T
                    for c in range(N):
                        Pb[B + i, c] += w_ * Q[i, c]
            if train_a:
                anoise = np.empty((K, N))
                for k in range(K):
                    sd = math.sqrt(var[k])
                    for c in range(N):
                        anoise[k, c] = sd * ans[jb, k, c]
        for u0 in range(0, K, sub):
            U = min(sub, K - u0)
            r0, r1 = u0 * B, (u0 + U) * B
            if r0 > 0:                                       # corrections from earlier sub-blocks
                _mm_ab(f, G[r0:r1, :r0], Cb[:r0], Pb[r0:r1], 1.0)
            done = _block(Pb[r0:r1], G[r0:r1, r0:r1], Yb[r0:r1], a, Cb[r0:r1], cb[u0:u0 + U], B,
                          kind, ap, mask[s0 + u0:s0 + u0 + U] if mask.shape[0] > 0 else empty,
                          train_a, anoise[u0:u0 + U] if anoise.shape[0] > 0 else empty)
            if done < U:
                return k0 + s0 + u0 + done
        _mm_atb(f, Cb, Xb, W, 1.0)                          # W += C^T X
        if noisy:
            for i in range(N):
                for c in range(d):
                    W[i, c] += S[i, c]
    return -1


# ---------------------------------------------------------------------------------------
# the dynamics
# ---------------------------------------------------------------------------------------
class TwoLayerSGD(Dynamics):
    r"""SGD (online, mini-batch, noisy, dropout) on a finite two-layer network.

    Parameters
    ----------
    data : DataLaw
        :class:`~ddsolve.networks.data.GaussianMixtureData` or :class:`~ddsolve.networks.data.TeacherData`
        (any law with ``dim`` and ``sample`` works; the exact risk and the default
        coordinates need one of these two).
    activation : Activation
        Piecewise linear, :class:`~ddsolve.networks.activations.Sigmoid` or
        :class:`~ddsolve.networks.activations.Tanh`.
    n : int
        Number of neurons :math:`N`.
    eps : float
        :math:`\varepsilon`: step :math:`s_k = \varepsilon\xi(k\varepsilon)/2`, PDE time per step.
    xi : float or Schedule
        ddsolve's :math:`\xi(t) = 2\xi_{\rm MMN}(t)` (default 2).
    beta : float
        Inverse temperature of noisy SGD (``inf``: no noise).
    batch : int
        Mini-batch size :math:`B`.
    dropout : float
        Keep probability :math:`p\in(0,1]`.
    train_a : bool
        Train the output weights (state rows are :math:`(w_i, a_i)`).
    kappa, a_mean, a_std : float
        Initialisation :math:`w\sim N(0,\kappa^2/d\,I_d)`, :math:`a\sim N(a_{\rm mean}, a_{\rm std}^2)`.
    risk : {"exact", "sample", "none"}
        Risk in :meth:`diagnostics`: :func:`particles.risk.population_risk` exact, Monte
        Carlo on a fixed held-out sample of ``risk_samples`` draws, or none.
    chunk : int
        Steps whose data are drawn at once.
    block : int, optional
        Steps per block of the blocked update (default: ``max(1, 128 // batch)``).
    sub : int, optional
        Steps per sub-block: inside a block the corrections between sub-blocks are one
        matrix product (default: ``max(1, 16 // batch)``).
    prefetch : bool
        Draw the next chunk's random numbers in a helper thread while the current chunk
        computes (the trajectory does not depend on it). Worth it only with a spare core,
        e.g. ``OPENBLAS_NUM_THREADS=1`` on two cores; with multithreaded BLAS the helper
        competes with it (measured on 2 cores, MMN's N = 800, d = 320, 2 BLAS threads:
        25.6 µs/step with, 23.3 without; 1 BLAS thread: 25.6 with, 30.5 without).
    names, reduce : optional
        Override of :meth:`coordinates`: ``reduce(W, a)`` (``a`` is ``None`` unless
        ``train_a``) returns an ``(N, len(names))`` array.
    """

    def __init__(self, data: DataLaw, activation: Activation, n: int, eps: float, *,
                 xi: float | Schedule = 2.0, beta: float = math.inf, batch: int = 1,
                 dropout: float = 1.0, train_a: bool = False, kappa: float = 0.4,
                 a_mean: float = 1.0, a_std: float = 0.1, risk: str = "exact",
                 risk_samples: int = 10_000, chunk: int = 1000, block: int | None = None,
                 sub: int | None = None, prefetch: bool = False,
                 names: tuple[str, ...] | None = None,
                 reduce: Callable[[np.ndarray, np.ndarray | None], np.ndarray] | None = None):
        if not isinstance(data, DataLaw):
            raise ValueError(f"data must be a ddsolve.networks.data.DataLaw, got {type(data).__name__}")
        if not isinstance(activation, Activation):
            raise ValueError(f"activation must be a ddsolve.networks.activations.Activation, got {activation!r}")
        self.kind, self.act_params = encode_activation(activation)

        def integer(name, value, low):
            try:
                ok = not isinstance(value, bool) and int(value) == value and value >= low
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            return int(value)

        self.n = integer("n", n, 1)
        self.batch = integer("batch", batch, 1)
        self.chunk = integer("chunk", chunk, 1)
        self.block = integer("block", max(1, 128 // self.batch) if block is None else block, 1)
        self.sub = integer("sub", max(1, 16 // self.batch) if sub is None else sub, 1)
        self.risk_samples = integer("risk_samples", risk_samples, 1)
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        if not (isinstance(beta, (int, float)) and beta > 0 and not math.isnan(beta)):
            raise ValueError(f"beta must be positive (math.inf for no noise), got {beta!r}")
        if not (isinstance(dropout, (int, float)) and 0 < dropout <= 1):
            raise ValueError(f"dropout (keep probability p) must lie in (0, 1], got {dropout!r}")
        if not (isinstance(kappa, (int, float)) and math.isfinite(kappa) and kappa > 0):
            raise ValueError(f"kappa must be a positive finite number, got {kappa!r}")
        if not (math.isfinite(a_mean) and math.isfinite(a_std) and a_std >= 0):
            raise ValueError(f"a_mean must be finite and a_std >= 0, got {a_mean!r}, {a_std!r}")
        if risk not in RISK_MODES:
            raise ValueError(f"risk must be one of {RISK_MODES}, got {risk!r}")
        try:
            self.schedule = Schedule.from_spec(xi)
        except ValueError as exc:
            raise ValueError(f"xi: {exc}") from None
        if reduce is not None and names is None:
            raise ValueError("reduce needs names (one per returned column)")
        self.data = data
        self.activation = activation
        self.d = int(data.dim)
        self.eps = float(eps)
        self.dt = self.eps
        self.beta = float(beta)
        self.p = float(dropout)
        self.train_a = bool(train_a)
        self.kappa, self.a_mean, self.a_std = float(kappa), float(a_mean), float(a_std)
        self.risk = risk
        self.prefetch = bool(prefetch)
        self._reduce = reduce
        if reduce is not None:
            self.names = tuple(names)
        elif names is not None:
            self.names = tuple(names)
            self._check_default_names()
        else:
            self.names = self._default_names()
        parts = ["minibatch"] if self.batch > 1 else []
        if self.beta < math.inf:
            parts.append("noisy-sgd")
        if self.p < 1:
            parts.append("dropout")
        self.method = "+".join(parts) or "sgd"

    # geometry --------------------------------------------------------------------------
    def _default_names(self) -> tuple[str, ...]:
        if isinstance(self.data, GaussianMixtureData):
            nb_ = len(self.data.blocks)
            base = ("r",) if nb_ == 1 else tuple(f"r{b + 1}" for b in range(nb_))
        elif isinstance(self.data, TeacherData):
            m = self.data.weights.shape[0]
            base = ("s", "u") if m == 1 else ("s",) + tuple(f"u{j + 1}" for j in range(m))
        else:
            base = ("r",)
        return base + (("a",) if self.train_a else ())

    def _check_default_names(self):
        if len(self.names) != len(self._default_names()):
            raise ValueError(f"names needs {len(self._default_names())} entries for the default "
                             f"coordinates {self._default_names()}, got {self.names}")

    @property
    def state_dim(self) -> int:
        return self.d + int(self.train_a)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(W, a)`` views of a state array (``a`` is ``None`` unless ``train_a``)."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.state_dim:
            raise ValueError(f"state must have shape (N, {self.state_dim}), got {x.shape}")
        return (x[:, : self.d], x[:, self.d]) if self.train_a else (x, None)

    # Dynamics interface -----------------------------------------------------------------
    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        W = rng.standard_normal((self.n, self.d)) * (self.kappa / math.sqrt(self.d))
        if self.train_a:
            a = self.a_mean + self.a_std * rng.standard_normal(self.n)
            W = np.concatenate([W, a[:, None]], axis=1)
        return ParticleState(np.ascontiguousarray(W), extra={"data_stream": int(rng.integers(2**63))})

    def step_size(self, k: int) -> float:
        r""":math:`s_k = \varepsilon\xi(k\varepsilon)/2`, the SGD step of step ``k``."""
        return 0.5 * float(self.step_coefficients(k, 1)[0])

    def step_coefficients(self, k0: int, n: int) -> np.ndarray:
        """:math:`2s_k = \\varepsilon\\xi(k\\varepsilon)` for steps ``k0 .. k0+n-1``."""
        if self.schedule.is_constant:
            return np.full(n, self.eps * self.schedule.params[0])
        return _step_coefficients(self.schedule.code, self.schedule.params, int(k0), int(n), self.eps)

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        steps = int(steps)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        x = state.x
        if x.ndim != 2 or x.shape != (self.n, self.state_dim):
            raise ValueError(f"state.x must have shape ({self.n}, {self.state_dim}), got {x.shape}")
        inplace = (not self.train_a and x.dtype == np.float64 and x.flags.c_contiguous
                   and x.flags.writeable)
        if inplace:
            W, a = x, np.ones(self.n)
        else:
            W = np.ascontiguousarray(x[:, : self.d], dtype=float)
            a = x[:, self.d].astype(float) if self.train_a else np.ones(self.n)
        start = state.step
        if "data_stream" not in state.extra:
            state.extra["data_stream"] = int(rng.integers(2**63))
        key = state.extra["data_stream"]
        pieces, k = [], start   # split at multiples of chunk: aligned data streams
        while k < start + steps:
            n = min(self.chunk - k % self.chunk, start + steps - k)
            pieces.append((k, n))
            k += n
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # divergence is reported below
                self._run_chunks(W, a, key, pieces, rng)
        except _NonFinite as exc:
            raise ParticleFailure(f"SGD produced non-finite predictions or noise at step {exc.step} "
                                  f"(t = {exc.step * self.dt:g})", start * self.dt) from None
        finally:
            if not inplace:
                x[:, : self.d] = W
                if self.train_a:
                    x[:, self.d] = a
        state.step += steps

    def split_point(self, start: int, stop: int, target: int) -> int:
        """:meth:`advance` cuts its steps into pieces at the multiples of ``chunk`` and each
        piece into blocks of ``block`` steps from the piece's start; the noise of a block is
        drawn per block, and the rounding depends on where blocks start. Cutting the call at
        a block boundary of its own pieces therefore changes nothing (bit for bit, random
        draws included); any other cut changes the rounding (and, with noise, the draws)."""
        if target >= stop:
            return stop
        target = max(target, start + 1)
        first_end = (start // self.chunk + 1) * self.chunk      # end of the first piece
        base = start if target <= first_end else (target // self.chunk) * self.chunk
        end = first_end if base == start else base + self.chunk
        return int(min(base + -(-(target - base) // self.block) * self.block, end, stop))

    def _run_chunks(self, W, a, key, pieces, rng):
        if self.prefetch and len(pieces) > 1:
            # the next piece's random numbers are drawn by a helper thread while this
            # piece computes (same generators, same order: the trajectory is unchanged)
            with ThreadPoolExecutor(max_workers=1) as pool:
                future = pool.submit(self._draw, *pieces[0], key, rng)
                for j, (k0, n) in enumerate(pieces):
                    drawn = future.result()
                    if j + 1 < len(pieces):
                        future = pool.submit(self._draw, *pieces[j + 1], key, rng)
                    self._run_chunk(W, a, k0, n, drawn)
        else:
            for k0, n in pieces:
                self._run_chunk(W, a, k0, n, self._draw(k0, n, key, rng))

    def _chunk_data(self, key: int, c: int):
        """Data and dropout uniforms of the aligned chunk ``c`` (cached: consecutive calls
        often end and start inside one chunk)."""
        cached = getattr(self, "_cached_chunk", None)
        if cached is not None and cached[0] == (key, c):
            return cached[1]
        gen = np.random.default_rng([key, c])
        X, Y = self.data.sample(self.chunk * self.batch, gen)
        U = gen.random((self.chunk, self.n)) if self.p < 1 else None
        drawn = (np.ascontiguousarray(X, dtype=float), np.ascontiguousarray(Y, dtype=float), U)
        self._cached_chunk = ((key, c), drawn)
        return drawn

    def step_data(self, state: ParticleState, k0: int, n: int):
        """The samples and dropout masks that :meth:`advance` uses for steps
        ``k0 .. k0+n-1`` of ``state``'s run: ``(X, Y, masks)`` with ``X`` of shape
        ``(n B, d)`` and ``masks`` boolean ``(n, N)`` (``None`` without dropout)."""
        key = state.extra["data_stream"]
        X, Y, M = [], [], []
        k = k0
        while k < k0 + n:
            c, o = divmod(k, self.chunk)
            m = min(self.chunk - o, k0 + n - k)
            Xc, Yc, U = self._chunk_data(key, c)
            X.append(Xc[o * self.batch:(o + m) * self.batch])
            Y.append(Yc[o * self.batch:(o + m) * self.batch])
            if U is not None:
                M.append(U[o:o + m] < self.p)
            k += m
        return np.concatenate(X), np.concatenate(Y), (np.concatenate(M) if M else None)

    def _draw(self, k0: int, n: int, key: int, rng: np.random.Generator):
        """All random numbers of the ``n`` steps from ``k0`` (within one aligned chunk):
        data and dropout masks (values m_i / p) from the chunk's stream, then per block the
        standard normals of the noise from ``rng``."""
        B, N, d = self.batch, self.n, self.d
        c, o = divmod(k0, self.chunk)
        Xc, Yc, U = self._chunk_data(key, c)
        X = Xc[o * B:(o + n) * B]
        Y = Yc[o * B:(o + n) * B]
        mask = ((U[o:o + n] < self.p) * (1.0 / self.p) if self.p < 1 else np.empty((0, N)))
        if self.beta < math.inf:
            nblocks = -(-n // self.block)
            Zs = np.empty((nblocks, N, d))
            zetas = np.empty((nblocks, max(self.block - 1, 0) * B, N))
            ans = np.empty((nblocks, self.block if self.train_a else 0, N))
            for j in range(nblocks):
                K = min(self.block, n - j * self.block)
                rng.standard_normal(out=Zs[j])
                rng.standard_normal(out=zetas[j, : (K - 1) * B])
                if self.train_a:
                    rng.standard_normal(out=ans[j, :K])
        else:
            Zs, zetas, ans = np.empty((0, N, d)), np.empty((0, 0, N)), np.empty((0, 0, N))
        return X, Y, mask, Zs, zetas, ans

    def _run_chunk(self, W, a, k0, n, drawn):
        X, Y, mask, Zs, zetas, ans = drawn
        coef = self.step_coefficients(k0, n)                 # 2 s_k
        inv_beta = 0.0 if self.beta == math.inf else 1.0 / self.beta
        failed = _run_chunk(DGEMM, W, a, X, Y, coef, self.batch, self.block, self.sub, self.kind,
                            self.act_params, mask, self.train_a, inv_beta, Zs, zetas, ans, k0)
        if failed >= 0:
            raise _NonFinite(failed)

    def run_on_data(self, state: ParticleState, X: np.ndarray, Y: np.ndarray,
                    masks: np.ndarray | None = None) -> None:
        """Advance ``state`` by ``len(X) // batch`` steps with the compiled kernels on the
        given samples (and 0/1 dropout ``masks`` of shape ``(steps, N)``); no noise. The
        counterpart of :meth:`numpy_steps` (same arguments) for tests and benchmarks."""
        if self.beta < math.inf:
            raise ValueError("run_on_data has no noise; use advance for beta < inf")
        X = np.ascontiguousarray(X, dtype=float)
        Y = np.ascontiguousarray(Y, dtype=float)
        n = X.shape[0] // self.batch
        if X.shape != (n * self.batch, self.d) or Y.shape != (n * self.batch,):
            raise ValueError(f"X must have shape (steps * {self.batch}, {self.d}) and Y (steps * {self.batch},)")
        N = self.n
        if masks is None:
            if self.p < 1:
                raise ValueError("dropout < 1 needs masks")
            mask = np.empty((0, N))
        else:
            mask = np.asarray(masks, dtype=float).reshape(n, N) / self.p
        x = state.x
        self.split(x)                                        # shape check
        Wc = np.ascontiguousarray(x[:, : self.d], dtype=float)
        ac = x[:, self.d].astype(float) if self.train_a else np.ones(N)
        empty = (np.empty((0, N, self.d)), np.empty((0, 0, N)), np.empty((0, 0, N)))
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                self._run_chunk(Wc, ac, state.step, n, (X, Y, mask) + empty)
        except _NonFinite as exc:
            raise ParticleFailure(f"SGD produced non-finite predictions at step {exc.step}",
                                  state.step * self.dt) from None
        finally:
            if not np.shares_memory(Wc, x):
                x[:, : self.d] = Wc
            if self.train_a:
                x[:, self.d] = ac
        state.step += n

    # numpy reference and gradients --------------------------------------------------------
    def predict(self, x_state: np.ndarray, xb: np.ndarray) -> np.ndarray:
        r""":math:`\hat y(x_b)` for inputs ``xb`` of shape ``(B, d)``."""
        W, a = self.split(x_state)
        s = self.activation(np.atleast_2d(xb) @ W.T)
        return (s @ a if a is not None else s.sum(axis=1)) / self.n

    def empirical_risk(self, x_state: np.ndarray, xb: np.ndarray, yb: np.ndarray) -> float:
        """Mean of :math:`(y_b - \\hat y(x_b))^2`."""
        return float(np.mean((np.asarray(yb, float) - self.predict(x_state, xb)) ** 2))

    def stochastic_gradient(self, x_state: np.ndarray, xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        r""":math:`g_i = -\frac1B\sum_b(y_b-\hat y_b)\nabla_\theta\sigma_*(x_b;\theta_i)`, shape
        of the state: :math:`\theta\leftarrow\theta - 2s_kg` is one SGD step, and
        :math:`g_i = N\,\partial_{\theta_i}\big[\tfrac12\,\mathrm{mean}_b(y_b-\hat y_b)^2\big]`."""
        W, a = self.split(x_state)
        xb = np.atleast_2d(np.asarray(xb, float))
        yb = np.atleast_1d(np.asarray(yb, float))
        z = xb @ W.T
        s, ds = self.activation(z), self.activation.derivative(z)
        aa = np.ones(self.n) if a is None else a
        r = yb - s @ aa / self.n                              # (B,)
        B = xb.shape[0]
        gW = -((r[:, None] * ds * aa[None, :]).T @ xb) / B
        if a is None:
            return gW
        ga = -(r @ s) / B
        return np.concatenate([gW, ga[:, None]], axis=1)

    def numpy_steps(self, x_state: np.ndarray, X: np.ndarray, Y: np.ndarray, step0: int = 0,
                    masks: np.ndarray | None = None, noise: np.ndarray | None = None) -> np.ndarray:
        r"""Plain NumPy per-step reference of the same update on given data (``X`` of shape
        ``(steps * batch, d)``), returning the new state; ``masks`` ``(steps, N)`` of 0/1,
        ``noise`` ``(steps, N, state_dim)`` added after each step. Slow; for tests and the
        benchmark."""
        x = np.array(x_state, dtype=float, copy=True)
        W, a = self.split(x)
        aa = np.ones(self.n) if a is None else a
        B = self.batch
        steps = X.shape[0] // B
        coef = self.step_coefficients(step0, steps)
        for k in range(steps):
            xb, yb = X[k * B:(k + 1) * B], Y[k * B:(k + 1) * B]
            z = xb @ W.T                                       # (B, N)
            s, ds = self.activation(z), self.activation.derivative(z)
            mk = np.ones(self.n) if masks is None else masks[k] / self.p
            cr = (coef[k] / B) * (yb - (s * mk) @ aa / self.n)  # 2 s_k (y_b - yhat_b) / B
            g = cr[:, None] * ds * (mk * aa)[None, :]
            da = cr @ (s * mk) if a is not None else None
            if B == 1:
                W += np.outer(g[0], xb[0])
            else:
                W += g.T @ xb
            if a is not None:
                a += da
            if noise is not None:
                x += noise[k]
        return x

    # outputs --------------------------------------------------------------------------
    def coordinates(self, state: ParticleState) -> np.ndarray:
        W, a = self.split(state.x)
        if self._reduce is not None:
            out = np.asarray(self._reduce(W, a), dtype=float)
            if out.shape != (self.n, len(self.names)):
                raise ValueError(f"reduce returned shape {out.shape}, expected ({self.n}, {len(self.names)})")
            return out
        if isinstance(self.data, GaussianMixtureData):
            edges = np.cumsum((0,) + self.data.blocks)
            cols = [np.linalg.norm(W[:, lo:hi], axis=1) for lo, hi in zip(edges[:-1], edges[1:])]
        elif isinstance(self.data, TeacherData):
            T = self.data.weights
            E = T / np.linalg.norm(T, axis=1, keepdims=True)
            u = W @ E.T                                        # (N, m)
            Qm, _ = np.linalg.qr(T.T)                          # orthonormal basis of the span
            perp = W - (W @ Qm) @ Qm.T
            cols = [np.linalg.norm(perp, axis=1)] + [u[:, j] for j in range(u.shape[1])]
        else:
            cols = [np.linalg.norm(W, axis=1)]
        if a is not None:
            cols.append(np.array(a))
        return np.stack(cols, axis=1)

    def vectors(self, state: ParticleState) -> np.ndarray:
        return state.x

    def population_risk(self, state: ParticleState, method: str | None = None) -> float:
        """Risk of the network in ``state`` (``method``: "exact" or "sample", default the
        constructor's ``risk``)."""
        method = method or self.risk
        W, a = self.split(state.x)
        if method == "sample":
            return population_risk(self.data, self.activation, W, a, method="sample",
                                   rng=np.random.default_rng(_RISK_SEED), samples=self.risk_samples)
        return population_risk(self.data, self.activation, W, a, method="exact")

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        r"""``risk`` and ``energy`` :math:`= (R - R_\#)/2` (the PDE's
        :math:`E = \int V\rho + \frac12\iint U\rho\rho`), unless ``risk = "none"``."""
        if self.risk == "none":
            return {}
        R = self.population_risk(state)
        return {"risk": R, "energy": 0.5 * (R - self.data.risk_offset)}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        data = self.data.to_dict() if hasattr(self.data, "to_dict") else {"name": self.data.name}
        out.update(eps=self.eps, dim=self.d, batch=self.batch, beta=self.beta, dropout=self.p,
                   train_a=self.train_a, kappa=self.kappa, a_mean=self.a_mean, a_std=self.a_std,
                   xi=self.schedule.description, activation=self.activation.to_dict(), data=data,
                   risk=self.risk, risk_samples=self.risk_samples, chunk=self.chunk, block=self.block,
                   sub=self.sub, prefetch=self.prefetch, coordinates=list(self.names))
        return out


class _NonFinite(Exception):
    def __init__(self, step):
        super().__init__(step)
        self.step = step
