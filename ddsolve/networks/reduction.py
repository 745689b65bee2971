r"""Exact reduced models of two-layer networks on Gaussian-mixture data.

Network :math:`\hat y(x) = \frac1N\sum_i a_i^{\,\epsilon}\,\sigma(\langle w_i,x\rangle)`
(:math:`\epsilon = 1` when the second layer is trained, else :math:`a_i\equiv1`), data
from :class:`~ddsolve.networks.data.GaussianMixtureData`: class :math:`c` with probability
:math:`\pi_c`, label :math:`y_c` and :math:`x\mid c\sim N(0,\mathrm{diag}(s_{c,b}^2
I_{n_b}))`. Then :math:`\langle w,x\rangle\mid c \sim N(0, A_c^2)` with
:math:`A_c(r)^2 = \sum_b s_{c,b}^2 r_b^2`, :math:`r_b = |w_b|`, and the potentials of
Mei, Montanari & Nguyen (PNAS 2018, eqs. (3)–(4)) depend on :math:`w` only through the
block norms :math:`r = (r_b)` (and the angles between blocks of two neurons):

.. math::

    V(r) = -\sum_c \pi_c\,y_c\,g(A_c(r)), \qquad g(\tau) = \mathbb{E}\,\sigma(\tau Z),

    \bar u(r, r') = \sum_c \pi_c\,\mathbb{E}_{t}\,
        \mathbb{E}\big[\sigma(A_cZ_1)\,\sigma(A'_cZ_{\rho_c})\big], \qquad
    \rho_c = \sum_b \frac{s_{c,b}^2\,r_b r'_b}{A_c A'_c}\,t_b,

where :math:`Z_{\rho}` has correlation :math:`\rho` with :math:`Z_1` and the block
cosines :math:`t_b` of two independent rotation-invariant neurons are independent with
density :math:`p_{n}(t)\propto(1-t^2)^{(n-3)/2}` on :math:`[-1,1]`. For isotropic data
this is the radial kernel of the design note, :math:`\bar u(r,r') = \int U(re,
r'(te+\sqrt{1-t^2}e_\perp))\,p_d(t)\,dt`, exact in every dimension.

**Separable (Mehler–Hermite) form.** Mehler's formula
:math:`\mathbb{E}[\sigma(aZ_1)\sigma(bZ_\rho)] = \sum_k \rho^k\hat c_k(a)\hat c_k(b)`
(:meth:`~ddsolve.networks.activations.Activation.hermite`) and the multinomial expansion of
:math:`\rho_c^k` with the angle moments :math:`m_n(j) = \mathbb{E}_{p_n}t^j`
(zero for odd :math:`j`, :math:`\prod_{i<j/2}\frac{2i+1}{n+2i}` for even :math:`j`) give

.. math::

    \bar u(r,r') = \sum_{c}\sum_{k\ \mathrm{even}}\sum_{|j| = k,\ j_b\ \mathrm{even}}
        w_{c,k,j}\,\phi_{c,k,j}(r)\,\phi_{c,k,j}(r'),\qquad
    \phi_{c,k,j}(r) = \prod_b\Big(\frac{s_{c,b}r_b}{A_c}\Big)^{j_b}\hat c_k(A_c),

    w_{c,k,j} = \pi_c\,\frac{k!}{\prod_b j_b!}\prod_b m_{n_b}(j_b) \ \ge 0,

a sum of squares (so the discrete kernel is positive semi-definite) whose terms decay
like :math:`n^{-k/2}`: on an :math:`M`-cell grid :math:`\Psi` costs :math:`O(MT)` for
:math:`T` terms instead of :math:`O(M^2)`.

**Truncation bound.** Keeping :math:`k\le K`, the remainder is a positive semi-definite
kernel, so :math:`|R(r,r')|\le\sqrt{R(r,r)R(r',r')}`, and since :math:`|\rho_c|\le1`,

.. math::

    R(r,r) \le \sum_c \pi_c\,\mathbb{E}[\rho_c^{K+2}]\Big(\mathbb{E}\sigma(A_cZ)^2
        - \sum_{k\le K}\hat c_k(A_c)^2\Big)

by Parseval. :class:`TwoLayerReduction` picks the smallest even :math:`K` with this
bound below ``tol`` times the kernel's scale on the points where it is evaluated.

For positively homogeneous activations (ReLU family) on isotropic data the kernel has
the closed form of the arc-cosine kernel (Cho & Saul, NeurIPS 2009),
:math:`\mathbb{E}[(Z_1)_+(Z_t)_+] = (\sqrt{1-t^2} + (\pi-\arccos t)\,t)/(2\pi)`, so
:math:`\bar u = \bar\kappa_d\sum_c\pi_cs_c^2\,r r'` has rank one.
"""

from __future__ import annotations

import math
import warnings
from itertools import product
from typing import Any

import numpy as np
from scipy.special import gammaln

from ddsolve.grid.quadrature import gauss_legendre
from ddsolve.model.kernels import Kernel
from ddsolve.model.potentials import Potential
from ddsolve.networks.activations import Activation, correlated_expectation
from ddsolve.networks.data import GaussianMixtureData

__all__ = [
    "angle_moments",
    "angle_quadrature",
    "arccos_kernel_mean",
    "TwoLayerReduction",
    "TeacherReduction",
    "ReducedPotential",
    "ReducedKernel",
    "reduced_kernel_by_quadrature",
]

ANGLE_MODES = ("exact", "large-d")


# ---------------------------------------------------------------------------------------
# angles
# ---------------------------------------------------------------------------------------
def angle_moments(n: float, jmax: int) -> np.ndarray:
    r""":math:`m_n(j) = \mathbb{E}\,t^j` for :math:`j = 0..j_{\max}`, :math:`t` the first
    coordinate of a uniform point of :math:`S^{n-1}` (density
    :math:`\propto(1-t^2)^{(n-3)/2}`; :math:`t=\pm1` for :math:`n=1`). ``n = inf`` is the
    large-dimension limit :math:`t = 0`."""
    m = np.zeros(jmax + 1)
    m[0] = 1.0
    if math.isinf(n):
        return m
    for j in range(2, jmax + 1, 2):
        m[j] = m[j - 2] * (j - 1) / (n + j - 2)
    return m


def angle_quadrature(n: int, nodes: int = 400) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes :math:`t_i` and weights (summing to one) for :math:`\mathbb{E}_{p_n}f(t)`.

    Gauss–Legendre in the angle :math:`\vartheta\in[0,\pi]`, :math:`t=\cos\vartheta`,
    with density :math:`\propto\sin^{n-2}\vartheta` — smooth in :math:`\vartheta` even
    where :math:`f` has a square-root singularity at :math:`t=\pm1` (e.g. the arc-cosine
    kernel). ``n = 1`` gives :math:`t = \pm1`."""
    if n == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    x, w = gauss_legendre(nodes)
    # sin^(n-2) has width ~ n^(-1/2) around pi/2: beyond 12 widths it is below e^-72
    half = min(0.5 * np.pi, 12.0 / math.sqrt(n))
    theta = 0.5 * np.pi + half * x
    with np.errstate(divide="ignore"):
        logw = np.log(w) + (n - 2) * np.log(np.sin(theta))
    w = np.exp(logw - logw.max())
    return np.cos(theta), w / w.sum()


def arccos_kernel_mean(n: int, nodes: int = 400) -> float:
    r""":math:`\bar\kappa_n = \mathbb{E}_{p_n}\big[\sqrt{1-t^2} + (\pi - \arccos t)\,t\big]/(2\pi)`,
    the angle average of :math:`\mathbb{E}[(Z_1)_+(Z_t)_+]`."""
    t, w = angle_quadrature(n, nodes)
    return float(w @ (np.sqrt(np.maximum(1 - t * t, 0.0)) + (np.pi - np.arccos(t)) * t)) / (2 * np.pi)


# ---------------------------------------------------------------------------------------
# reference quadrature (validation of the series; exact teacher risks)
# ---------------------------------------------------------------------------------------
def reduced_kernel_by_quadrature(data: GaussianMixtureData, activation: Activation, r, r_prime,
                                 angle_nodes: int = 200) -> np.ndarray:
    r""":math:`\bar u(r,r')` for isotropic data (one block) by direct quadrature over the
    angle and the Gaussian pair — :math:`O(\text{nodes})` work per pair, for validating
    the separable series."""
    if len(data.blocks) != 1:
        raise ValueError("reduced_kernel_by_quadrature handles isotropic (one-block) data")
    r, rp = np.broadcast_arrays(np.asarray(r, float), np.asarray(r_prime, float))
    t, w = angle_quadrature(data.blocks[0], angle_nodes)
    out = np.zeros(r.shape)
    for pc, sc in zip(data.probs, data.scales[:, 0]):
        E = correlated_expectation(activation, sc * r[..., None], sc * rp[..., None], t)
        out += pc * (E @ w)
    return out


# ---------------------------------------------------------------------------------------
# the reduction
# ---------------------------------------------------------------------------------------
class TwoLayerReduction:
    r"""V, the separable kernel and their gradients in reduced coordinates.

    Coordinates are the block norms ``(r_1, ..., r_B)`` followed, when the second layer
    is trained, by the output weight ``a`` (``sigma_* = a sigma(<w, x>)``).

    Parameters
    ----------
    data : GaussianMixtureData
    activation : Activation
    second_layer : bool
        Whether the output weight ``a`` is a coordinate.
    angles : {"exact", "large-d"}
        ``exact`` keeps the angle moments of every block (exact for every ``d``);
        ``large-d`` sets them to their ``d -> inf`` limit 0 (independent neurons
        orthogonal), keeping only the ``k = 0`` term ``g(A)g(A')``.
    tol : float
        Relative truncation tolerance of the series (see the module doc).
    kmax : int
        Largest Hermite order tried; if the bound is not met a warning is issued.
    max_terms : int
        Largest number of separable terms (with two blocks the count grows like
        :math:`K^2/4`); the order stops growing there, with the same warning.
    signed : sequence of bool, optional
        Per block: a *signed* one-dimensional block keeps the coordinate
        :math:`u = \langle w, e\rangle\in\mathbb{R}` itself instead of a norm (no angle
        average: its "cosine" is 1, so odd orders appear), as the teacher direction of
        :class:`TeacherReduction`.
    """

    def __init__(self, data: GaussianMixtureData, activation: Activation, second_layer: bool = False,
                 angles: str = "exact", tol: float = 1e-10, kmax: int = 512,
                 max_terms: int = 4000, signed=None):
        if angles not in ANGLE_MODES:
            raise ValueError(f"angles must be one of {ANGLE_MODES}, got {angles!r}")
        if not (tol > 0 and kmax >= 2):
            raise ValueError("tol must be positive and kmax >= 2")
        self.data = data
        self.activation = activation
        self.second_layer = bool(second_layer)
        self.angles = angles
        self.tol = float(tol)
        self.kmax = int(kmax)
        self.max_terms = int(max_terms)
        self.nblocks = len(data.blocks)
        self.signed = tuple(bool(x) for x in (signed or (False,) * self.nblocks))
        if len(self.signed) != self.nblocks:
            raise ValueError("signed needs one entry per block")
        if any(sg and n != 1 for sg, n in zip(self.signed, data.blocks)):
            raise ValueError("a signed block is one-dimensional")
        self.any_signed = any(self.signed)
        self.ndim = self.nblocks + int(self.second_layer)
        self.closed_form = (activation.homogeneous is not None and self.nblocks == 1
                            and angles == "exact" and not self.any_signed)
        self.report: dict[str, Any] = {
            "activation": activation.to_dict(), "data": data.to_dict(),
            "second_layer": self.second_layer, "angles": angles, "tol": self.tol,
        }
        self.report["closed_form"] = self.closed_form
        if self.closed_form:
            p, q = activation.homogeneous
            kbar = arccos_kernel_mean(data.blocks[0])
            self._rank_one = math.sqrt((p - q) ** 2 * kbar * float(data.probs @ data.scales[:, 0] ** 2))

    @property
    def risk_offset(self) -> float:
        r""":math:`R_\# = \mathbb{E}y^2`."""
        return self.data.risk_offset

    @property
    def radial_dims(self) -> tuple[int | None, ...]:
        """Per coordinate: the block dimension of a radial coordinate, ``None`` for signed
        blocks and the output weight."""
        dims = tuple(None if sg else n for sg, n in zip(self.signed, self.data.blocks))
        return dims + ((None,) if self.second_layer else ())

    # coordinates ---------------------------------------------------------------------
    def _split(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        points = np.asarray(points, dtype=float)
        if points.shape[-1] != self.ndim:
            raise ValueError(f"reduced points have {self.ndim} coordinate(s), got shape {points.shape}")
        r = points[..., : self.nblocks]
        if not self.any_signed:
            r = np.abs(r)
        else:
            r = np.where(np.array(self.signed), r, np.abs(r))
        a = points[..., self.nblocks] if self.second_layer else None
        return r, a

    def scales(self, r: np.ndarray) -> np.ndarray:
        """:math:`A_c(r)`, shape ``(classes, ...)``."""
        s2 = self.data.scales**2  # (C, B)
        return np.sqrt(np.einsum("cb,...b->c...", s2, r * r))

    # potential -------------------------------------------------------------------------
    def potential(self, points: np.ndarray) -> np.ndarray:
        r""":math:`V = -a^\epsilon\sum_c\pi_cy_cg(A_c)`."""
        r, a = self._split(points)
        A = self.scales(r)
        v = -np.einsum("c,c...->...", self.data.probs * self.data.labels, self.activation.g(A))
        return v if a is None else a * v

    def potential_gradient(self, points: np.ndarray) -> np.ndarray:
        r, a = self._split(points)
        A = self.scales(r)
        dg = self.activation.hermite_derivative(A, 0)[0]  # g'(A)
        coef = -(self.data.probs * self.data.labels)
        with np.errstate(divide="ignore", invalid="ignore"):
            dA = np.where(A[..., None] > 0, self.data.scales[(slice(None),) + (None,) * (r.ndim - 1)] ** 2
                          * r[None] / A[..., None], 0.0)  # (C, ..., B)
        grad_r = np.einsum("c,c...,c...b->...b", coef, dg, dA)
        if a is None:
            return grad_r
        v = np.einsum("c,c...->...", coef, self.activation.g(A))
        return np.concatenate([a[..., None] * grad_r, v[..., None]], axis=-1)

    # separable kernel ------------------------------------------------------------------
    def _moments(self, K: int) -> list[np.ndarray]:
        r"""Per block, :math:`\mathbb{E}t_b^j` for ``j <= K`` (1 for a signed block)."""
        return [np.ones(K + 1) if sg else angle_moments(math.inf if self.angles == "large-d" else n, K)
                for sg, n in zip(self.signed, self.data.blocks)]

    def _multi_indices(self, k: int):
        """Multi-indices ``j`` with ``|j| = k`` and non-vanishing moments, with their
        multinomial coefficient times the product of moments."""
        mom = self._moments(k)
        ranges = [range(0, k + 1) if sg else range(0, k + 1, 2) for sg in self.signed]
        for j in product(*ranges):
            if sum(j) != k:
                continue
            coef = math.exp(gammaln(k + 1) - sum(gammaln(jb + 1) for jb in j)) * \
                math.prod(mom[b][jb] for b, jb in enumerate(j))
            if coef > 0:
                yield j, coef

    def _orders(self, K: int) -> range:
        """Orders ``k <= K`` present in the series (even only without signed blocks)."""
        return range(0, K + 1, 1 if self.any_signed else 2)

    def _terms(self, K: int) -> list[tuple[int, int, tuple[int, ...], float]]:
        """``(class, k, j, weight)`` of the series truncated at order ``K``."""
        terms = []
        for k in self._orders(K):
            for j, coef in self._multi_indices(k):
                for c, pc in enumerate(self.data.probs):
                    terms.append((c, k, j, pc * coef))
        return terms

    def _diagonal_moment(self, r: np.ndarray, A: np.ndarray, k: int) -> np.ndarray:
        r""":math:`\mathbb{E}[\rho_c^k]` at :math:`r = r'`, shape ``(C, ...)``."""
        out = np.zeros(A.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            u2 = np.where(A[..., None] > 0, (self.data.scales[(slice(None),) + (None,) * (r.ndim - 1)]
                                             * r[None]) ** 2 / A[..., None] ** 2, 0.0)
        for j, coef in self._multi_indices(k):
            out += coef * np.prod(u2 ** np.array(j), axis=-1)
        return out

    def choose_order(self, points: np.ndarray) -> tuple[int, float]:
        """Smallest even ``K`` whose truncation bound on ``points`` is below
        ``tol * scale``; returns ``(K, relative bound)``."""
        if self.closed_form:
            return 0, 0.0
        if self.angles == "large-d":
            return 0, math.nan
        r, _ = self._split(points)
        r = r.reshape(-1, self.nblocks)
        A = self.scales(r)  # (C, N)
        second = self.activation.second_moment(A)
        scale = float(np.max(self.data.probs @ second)) or 1.0
        K = 8
        while True:
            K = min(K, self.kmax - self.kmax % 2)
            c = self.activation.hermite(A, K)
            tail = np.maximum(second - np.sum(c * c, axis=0), 0.0)
            # |rho| <= 1: E rho^k <= E rho^(K+2) for even k > K; with signed blocks odd
            # orders appear and |E rho^k| <= E rho^K for all k > K
            D = self._diagonal_moment(r, A, K if self.any_signed else K + 2)
            bound = float(np.max(self.data.probs @ (D * tail))) / scale
            if bound <= self.tol or K >= self.kmax - 1 or len(self._terms(2 * K)) > self.max_terms:
                break
            K *= 2
        if bound > self.tol:
            warnings.warn(f"two-layer kernel: Hermite series truncated at K = {K} has relative "
                          f"error bound {bound:.2e} > tol = {self.tol:g}", stacklevel=3)
        return K, bound

    def features(self, points: np.ndarray, K: int | None = None, gradient: bool = False):
        r"""Features :math:`\sqrt{w}\,\phi(r)` (times :math:`a` if trained), shape
        ``(T, ...)``, with :math:`U(x,y) = \sum_T f_T(x)f_T(y)`; with ``gradient`` also
        :math:`\nabla f_T`, shape ``(T, ..., ndim)``. ``K`` defaults to
        :meth:`choose_order` on ``points``."""
        r, a = self._split(points)
        if self.closed_form:
            F = self._rank_one * r[None, ..., 0]
            dF = np.full(F.shape + (1,), self._rank_one)
        else:
            if K is None:
                K, bound = self.choose_order(points)
                # no bound for the large-d limit: it is an approximation by choice
                self.report.update(hermite_order=K, terms=len(self._terms(K)),
                                   truncation_bound=None if math.isnan(bound) else bound)
            terms = self._terms(K)
            A = self.scales(r)  # (C, ...)
            kk = max((t[1] for t in terms), default=0)
            coef = self.activation.hermite(A, kk)  # (kk+1, C, ...)
            dcoef = self.activation.hermite_derivative(A, kk) if gradient else None
            s = self.data.scales
            with np.errstate(divide="ignore", invalid="ignore"):
                safeA = np.where(A > 0, A, 1.0)
            F = np.empty((len(terms),) + r.shape[:-1])
            dF = np.empty(F.shape + (self.nblocks,)) if gradient else None
            for i, (c, k, j, w) in enumerate(terms):
                u = np.where(A[c][..., None] > 0, s[c] * r / safeA[c][..., None], 0.0)  # (..., B)
                mono = np.prod(u ** np.array(j), axis=-1)
                sw = math.sqrt(w)
                F[i] = sw * mono * coef[k, c]
                if gradient:
                    for b in range(self.nblocks):
                        jb = np.array(j)
                        if j[b] > 0:
                            jb[b] -= 1
                            lower = j[b] * s[c, b] * np.prod(u ** jb, axis=-1) / safeA[c]
                        else:
                            lower = 0.0
                        dlogA = s[c, b] ** 2 * r[..., b] / safeA[c] ** 2
                        dF[i, ..., b] = sw * ((lower - k * mono * dlogA) * coef[k, c]
                                              + mono * dcoef[k, c] * dlogA * A[c])
        if a is None:
            return (F, dF) if gradient else F
        if not gradient:
            return F * a
        dFa = np.concatenate([dF * a[..., None], F[..., None]], axis=-1)
        return F * a, dFa

    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """:math:`U(x, y)` for broadcasting point arrays (order chosen on both)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        K, _ = self.choose_order(np.concatenate([x.reshape(-1, self.ndim), y.reshape(-1, self.ndim)]))
        Fx, Fy = self.features(x, K), self.features(y, K)
        return np.sum(Fx * Fy, axis=0)

    def kernel_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r""":math:`\nabla_x U(x, y)`."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        K, _ = self.choose_order(np.concatenate([x.reshape(-1, self.ndim), y.reshape(-1, self.ndim)]))
        _, dFx = self.features(x, K, gradient=True)
        Fy = self.features(y, K)
        return np.sum(dFx * Fy[..., None], axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Description and, once features were built, the chosen order and bound."""
        return dict(self.report)


class TeacherReduction(TwoLayerReduction):
    r"""Teacher–student regression with one teacher neuron, exact reduced model.

    Data :math:`x\sim N(0, I_d)`, :math:`y = a_*\sigma(\tau_*\langle e, x\rangle)` (a unit
    teacher direction :math:`e`), student :math:`\sigma(\langle w, x\rangle)`. A law of
    :math:`w` invariant under the rotations fixing :math:`e` is carried by
    :math:`(s, u) = (|w - \langle w,e\rangle e|, \langle w, e\rangle)`: :math:`s` is a
    radius in :math:`\mathbb{R}^{d-1}` and :math:`u` a signed coordinate. With
    :math:`A = |w| = \sqrt{s^2+u^2}`,

    .. math::

        V(s,u) = -a_*\,\mathbb{E}\big[\sigma(\tau_*Z_1)\,\sigma(AZ_{u/A})\big],
        \qquad \bar u = \mathbb{E}_t\,\mathbb{E}\big[\sigma(AZ_1)\sigma(A'Z_\rho)\big],
        \quad \rho = \frac{uu' + ss't}{AA'},\ t\sim p_{d-1},

    the kernel being the two-block series with a signed block (:class:`TwoLayerReduction`)
    and :math:`V` the correlated expectation by quadrature
    (:func:`correlated_expectation`); :math:`R_\# = a_*^2\,\mathbb{E}\sigma(\tau_*Z)^2`.
    The global minimisers include :math:`\rho = \delta_{(0,\tau_*)}` when
    :math:`a_* = 1` (student = teacher, risk 0).
    """

    def __init__(self, dim: int, activation: Activation, teacher_norm: float = 1.0,
                 teacher_weight: float = 1.0, angles: str = "exact", tol: float = 1e-10,
                 kmax: int = 512, max_terms: int = 4000):
        if int(dim) != dim or dim < 2:
            raise ValueError(f"the teacher reduction needs dim >= 2, got {dim}")
        if not (math.isfinite(teacher_norm) and teacher_norm > 0 and math.isfinite(teacher_weight)):
            raise ValueError("teacher_norm must be positive and teacher_weight finite")
        data = GaussianMixtureData([int(dim) - 1, 1], [1.0], [0.0], [[1.0, 1.0]], name="teacher")
        super().__init__(data, activation, False, angles, tol, kmax, max_terms, signed=(False, True))
        self.dim = int(dim)
        self.teacher_norm = float(teacher_norm)
        self.teacher_weight = float(teacher_weight)
        self.report.update(data={"name": "teacher", "dim": self.dim, "inputs": "gaussian"},
                           teacher_norm=self.teacher_norm, teacher_weight=self.teacher_weight)

    @property
    def risk_offset(self) -> float:
        return float(self.teacher_weight**2 * self.activation.second_moment(np.array(self.teacher_norm)))

    def teacher_data(self):
        """The same law as a :class:`~ddsolve.networks.data.TeacherData` sampler (teacher
        direction :math:`e_1`; a student :math:`w` maps to :math:`(|w_{2:d}|, w_1)`)."""
        from ddsolve.networks.data import TeacherData

        W = np.zeros((1, self.dim))
        W[0, 0] = self.teacher_norm
        return TeacherData(W, self.activation, second_layer=[self.teacher_weight])

    def potential(self, points, chunk: int = 4096):
        r, _ = self._split(points)
        flat = r.reshape(-1, 2)
        A = np.hypot(flat[:, 0], flat[:, 1])
        t = np.divide(flat[:, 1], A, out=np.zeros_like(A), where=A > 0)
        out = np.empty(A.size)
        for i in range(0, A.size, chunk):
            sl = slice(i, i + chunk)
            out[sl] = correlated_expectation(self.activation, self.teacher_norm, A[sl], t[sl])
        return -self.teacher_weight * out.reshape(r.shape[:-1])

    def potential_gradient(self, points):
        """Central differences of :meth:`potential` (step :math:`10^{-5}(1+|x|)`)."""
        points = np.asarray(points, dtype=float)
        grad = np.empty(points.shape)
        for k in range(points.shape[-1]):
            h = 1e-5 * (1.0 + np.abs(points[..., k]))
            e = np.zeros(points.shape)
            e[..., k] = h
            grad[..., k] = (self.potential(points + e) - self.potential(points - e)) / (2 * h)
        return grad


class ReducedPotential(Potential):
    """:math:`V` of a :class:`TwoLayerReduction` as a :class:`~ddsolve.model.potentials.Potential`."""

    def __init__(self, reduction: TwoLayerReduction):
        self.reduction = reduction
        self.ndim = reduction.ndim

    def __call__(self, x):
        return self.reduction.potential(x)

    def gradient(self, x):
        return self.reduction.potential_gradient(x)


class ReducedKernel(Kernel):
    """:math:`\\bar u` of a :class:`TwoLayerReduction` as a :class:`~ddsolve.model.kernels.Kernel`
    with a symmetric feature map (applied in :math:`O(MT)` by
    :class:`~ddsolve.grid.interaction.SeparableInteraction`)."""

    def __init__(self, reduction: TwoLayerReduction):
        self.reduction = reduction
        self.ndim = reduction.ndim

    def __call__(self, x, y):
        return self.reduction.kernel(x, y)

    def gradient1(self, x, y):
        return self.reduction.kernel_gradient(x, y)

    #: ``feature_map(ndim)(points, gradient=True)`` also returns the feature gradients
    #: (used by the particles' O(N T) force, :mod:`particles.forces`)
    feature_gradients = True

    def feature_map(self, ndim):
        self.check_ndim(ndim)
        return self.reduction.features
