r"""Exponential time integration of the linear finite-volume operator: exact in time.

Without interaction (:math:`\Psi = V`) and with diffusion, the Scharfetter–Gummel
discretisation of :math:`\partial_t\rho = \xi(t)\nabla\cdot\big(\rho\nabla(V+\beta^{-1}\log(\rho/m))\big)`
(:mod:`ddsolve.schemes.fv.newton`) is linear, :math:`\dot\rho = \xi(t)A\rho` with a constant
tridiagonal (cyclic on a periodic axis) matrix :math:`A`, and so

.. math:: \rho(t_1) = \exp(\Xi A)\,\rho(t_0), \qquad \Xi = \int_{t_0}^{t_1}\xi(t)\,dt

for every schedule :math:`\xi` (:func:`ddsolve.model.schedule.schedule_integral`): each
output interval is one matrix exponential, whatever its length, and the only time error is
that of evaluating it.

**Spectrum.** :math:`A` has non-negative off-diagonal entries and zero column sums, and every
face flux vanishes at the discrete Gibbs state :math:`\rho^\infty_j\propto m_je^{-\beta V_j}`
(detailed balance), so :math:`D^{-1/2}AD^{1/2}` with :math:`D=\mathrm{diag}(\rho^\infty)` is
symmetric negative semi-definite: the eigenvalues of :math:`\Xi A` are real and in
:math:`(-\infty, 0]`.

**Contour integral.** For such a matrix

.. math:: e^{\Xi A}b = \frac{1}{2\pi i}\int_\Gamma e^{z}\,(zI-\Xi A)^{-1}b\,dz,
          \qquad z(\theta) = n\big(\sigma + \mu\,\theta\cot(\alpha\theta) + i\nu\theta\big),
          \; -\pi<\theta<\pi,

on Talbot's contour with the parameters :math:`\sigma=-0.6122`, :math:`\mu=0.5017`,
:math:`\alpha=0.6407`, :math:`\nu=0.2645` that Weideman optimised for singularities on the
negative real axis (J. A. C. Weideman, "Optimizing Talbot's contours for the inversion of
the Laplace transform", SIAM J. Numer. Anal. 44, 2006; Trefethen, Weideman & Schmelzer, BIT
46, 2006). The trapezoidal rule with :math:`n` midpoints gives a rational approximation
:math:`r_n(\Xi A)b = 2\,\mathrm{Re}\sum_{k=1}^{n/2}w_k(z_kI-\Xi A)^{-1}b` (real :math:`A, b`:
the nodes come in conjugate pairs), so one output costs :math:`n/2` complex tridiagonal
solves, :math:`O(nM)`. Its error on the spectrum,
:math:`\varepsilon_n=\max_{\lambda\le0}|r_n(\lambda)-e^\lambda|`, is measured
(``tests/ddsolve/test_exponential.py``) below :data:`QUADRATURE_ERROR_BOUND`
:math:`\,e^{-1.358n}` (Weideman's rate) down to round-off at :math:`n = 24`.

**Node count.** In the norm :math:`\|v\|_*^2=\sum_j v_j^2/\rho^\infty_j`, in which
:math:`A` is self-adjoint, the error of :math:`r_n(\Xi A)b` is at most
:math:`\varepsilon_n\|b\|_*`, and by Cauchy–Schwarz :math:`\|v\|_1\le\|v\|_*\|\rho^\infty\|_1^{1/2}`,
so in :math:`L^1`

.. math:: \|r_n(\Xi A)b - e^{\Xi A}b\|_1 \le \varepsilon_n\,a(b)\,\|b\|_1,\qquad
          a(b) = \|b\|_*\|\rho^\infty\|_1^{1/2}/\|b\|_1 \ge 1 .

The amplification :math:`a(b)` is small when :math:`b` is spread like the Gibbs state
and large (up to :math:`e^{\beta\Delta V/2}`) when it sits where the Gibbs state is
tiny: a start in the tail of a confining potential needs more nodes. Each interval takes
the fewest nodes with :math:`\varepsilon_n\,a(b)\le` ``rtol``/10 (:func:`nodes_for`,
:func:`log_amplification`), at most 24. ``rtol = "auto"`` is :math:`10/n_{cells}^2`; on
OU, a double well at :math:`\beta = 3` and :math:`20`, and OU started in its tail, on
160-1280 cells, the time error is then at most :math:`9\times10^{-3}` of the spatial
error (measured against ESDIRK4 at round-off tolerances; ``tests/ddsolve/test_exponential.py``).

**Invariants.** Mass: :math:`\mathbf 1^\top A = 0` gives
:math:`\mathbf 1^\top(zI-\Xi A)^{-1}b = \mathbf 1^\top b/z`, so the result carries
:math:`r_n(0)` times the mass and is rescaled to the exact mass. Positivity:
:math:`\exp(\Xi A)` is entrywise non-negative (:math:`A` is a Metzler matrix); values the
quadrature error leaves negative (of relative size :math:`\varepsilon_n`) are set to zero
before the rescaling, and the largest of them is reported (``info["clipped_max"]``).
Free energy: the semi-discrete flow dissipates it (the SG flux, newton module), and each
output is that flow's solution to :math:`\varepsilon_n`; increases between outputs are
counted (``energy_increases``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from pde.solvers.base import SolverBase

from ddsolve.model.schedule import schedule_integral, schedule_value
from ddsolve.schemes.fv import newton as nw
from ddsolve.schemes.fv.auto import grid_tolerances, linear_operator_reason
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SolverFailure
from ddsolve.schemes.stepping import Resumable

__all__ = ["ExponentialFVSolver", "talbot_nodes", "nodes_for", "exponential_apply", "TALBOT",
           "QUADRATURE_ERROR_BOUND", "NODES_RANGE", "log_amplification"]

TALBOT = (-0.6122, 0.5017, 0.6407, 0.2645)
r"""Weideman's parameters :math:`(\sigma, \mu, \alpha, \nu)` of Talbot's contour (module doc)."""
TALBOT_RATE = 1.358
QUADRATURE_ERROR_BOUND = 3.0
r""":math:`\varepsilon_n \le 3\,e^{-1.358 n}` on :math:`(-\infty, 0]` (measured: at most
2.3 :math:`e^{-1.358 n}` for :math:`n \le 22`)."""
NODES_RANGE = (4, 24)
"""Even node counts used; at 24 the error reaches round-off (about 2e-14)."""
RTOL_SHARE = 0.1
"""The quadrature error is held to this fraction of ``rtol``."""


def talbot_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``n/2`` nodes :math:`z_k` with :math:`\mathrm{Im}\,z_k > 0` and weights
    :math:`w_k` of the ``n``-point rule: :math:`e^{\lambda} \approx
    2\,\mathrm{Re}\sum_k w_k/(z_k-\lambda)` for :math:`\lambda \le 0`.

    Examples
    --------
    >>> z, w = talbot_nodes(16)
    >>> bool(abs(2 * np.real(np.sum(w / (z + 1.0))) - math.exp(-1.0)) < 1e-9)
    True
    """
    if n < 2 or n % 2:
        raise ValueError(f"the number of contour nodes must be even and at least 2, got {n}")
    s, mu, a, nu = TALBOT
    th = (np.arange(n // 2) + 0.5) * (2.0 * np.pi / n)
    z = n * (s + mu * th / np.tan(a * th) + 1j * nu * th)
    dz = n * (mu / np.tan(a * th) - mu * a * th / np.sin(a * th) ** 2 + 1j * nu)
    return z, np.exp(z) * dz / (1j * n)


@nb.njit(cache=True)
def nodes_for(rtol: float, log_amp: float = 0.0) -> int:
    """The smallest even node count in :data:`NODES_RANGE` whose error bound, times the
    amplification ``exp(log_amp)`` of :func:`log_amplification`, is at most
    ``RTOL_SHARE * rtol`` (the largest when none is)."""
    lo, hi = NODES_RANGE
    for n in range(lo, hi + 1, 2):
        if math.log(QUADRATURE_ERROR_BOUND) - TALBOT_RATE * n + log_amp <= math.log(RTOL_SHARE * rtol):
            return n
    return hi


@nb.njit(cache=True, error_model="numpy")
def _unit_lines(rho, t, prob, work, rate):
    """The lines of :math:`A = J/\\xi(t)` (the operator at :math:`\\xi = 1`) into the
    workspace's ``sub, dia, sup`` and corners."""
    geom = prob[6]
    g, cr = work[0], work[1]
    xi = schedule_value(prob[4], prob[5], t)
    nw.implicit_rate(rho, t, prob, work, False, rate)
    nw._axis_tridiag(g[4], g[5], geom[0], geom[2], 0.0, -1.0 / xi, g[11], g[12], g[13], cr[0], cr[1])


@nb.njit(cache=True, error_model="numpy", inline="always")
def _reciprocal(d):
    """``1/d`` for complex ``d`` with one real division (the shifts keep ``|d|`` far from
    the overflow and underflow thresholds)."""
    q = 1.0 / (d.real * d.real + d.imag * d.imag)
    return complex(d.real * q, -d.imag * q)


@nb.njit(cache=True, error_model="numpy")
def exponential_apply(rho, span, lines, zs, ws, cwork):
    r"""``rho <- r_n(span A) rho`` in place (module doc), rescaled to its mass with the
    negative values the quadrature error leaves set to zero.

    ``lines = (sub, dia, sup, clo, chi)`` are those of :math:`A` (shape ``(M, 1)``, corners
    ``(1,)``, as :func:`ddsolve.schemes.fv.newton._axis_tridiag` makes them). The ``n/2``
    shifted systems :math:`(z_kI - \mathrm{span}\,A)x_k = 
ho` share the off-diagonals
    and are eliminated together, their independent recurrences interleaved (Thomas, no
    pivoting: every leading principal submatrix is a principal submatrix of the symmetric
    negative semi-definite :math:`D^{-1/2}AD^{1/2}` shifted by a non-real :math:`z_k`, so
    none is singular; a non-finite result fails the interval); a cyclic line is the tridiagonal one plus a rank-one term (Sherman–Morrison,
    as in :func:`ddsolve.schemes.fv.newton._line_factor`). ``cwork = (ib, y, q)`` of shape
    ``(M, n/2)``. Returns ``(ok, clipped)``: False if the result is not finite, and the
    largest value set to zero."""
    sub, dia, sup, clo, chi = lines
    ib, y, q = cwork
    n = rho.shape[0]
    K = zs.size
    lo = -span * clo[0]  # the shifted matrix's corners [n-1, 0] and [0, n-1]
    hi = -span * chi[0]
    cyclic = lo != 0.0 or hi != 0.0
    mass = 0.0
    for i in range(n):
        mass += rho[i, 0]
    # forward elimination, all shifts at once
    for i in range(n):
        a = -span * sub[i, 0]
        cm = -span * sup[i - 1, 0] if i > 0 else 0.0
        ac = a * cm
        bi = rho[i, 0]
        dd = span * dia[i, 0]
        for k in range(K):
            d = zs[k] - dd
            if cyclic:
                gam = span * dia[0, 0] - zs[k]  # minus the first diagonal entry
                if i == 0:
                    d -= gam
                if i == n - 1:
                    d -= lo * hi / gam
            if i > 0:
                d -= ac * ib[i - 1, k]
            r = _reciprocal(d)
            ib[i, k] = r
            if i == 0:
                y[i, k] = bi * r
            else:
                y[i, k] = (bi - a * y[i - 1, k]) * r
            if cyclic:
                u = gam if i == 0 else (lo if i == n - 1 else 0.0)
                if i == 0:
                    q[i, k] = u * r
                else:
                    q[i, k] = (u - a * q[i - 1, k]) * r
    # back substitution: x_i -= sup_i / d_i * x_{i+1}
    for i in range(n - 2, -1, -1):
        cs = -span * sup[i, 0]
        for k in range(K):
            f = cs * ib[i, k]
            y[i, k] -= f * y[i + 1, k]
            if cyclic:
                q[i, k] -= f * q[i + 1, k]
    if cyclic:
        for k in range(K):
            gam = span * dia[0, 0] - zs[k]
            fac = (y[0, k] + hi * y[n - 1, k] / gam) / (1.0 + q[0, k] + hi * q[n - 1, k] / gam)
            for i in range(n):
                y[i, k] -= fac * q[i, k]
    clipped = 0.0
    have = 0.0
    for i in range(n):
        acc = 0.0
        for k in range(K):
            acc += (ws[k] * y[i, k]).real
        v = 2.0 * acc
        if not math.isfinite(v):
            return False, 0.0
        if v < 0.0:
            clipped = max(clipped, -v)
            v = 0.0
        rho[i, 0] = v
        have += v
    if have > 0.0 and mass > 0.0:
        rho *= mass / have
    return True, clipped


@nb.njit(cache=True, error_model="numpy")
def log_amplification(rho, log_gibbs, inv_gibbs, gibbs_sum):
    r""":math:`\log a(\rho) = \log\big(\|\rho\|_*\|\rho^\infty\|_1^{1/2}/\|\rho\|_1\big)`
    (:math:`\ge 0` by Cauchy–Schwarz; module doc), the factor by which the quadrature
    error can exceed :math:`\varepsilon_n\|\rho\|_1` in :math:`L^1`. ``log_gibbs`` is
    :math:`\log\rho^\infty` up to a constant (it cancels) and ``inv_gibbs`` its
    :math:`\exp(\max\log\rho^\infty - \log\rho^\infty_j)` (``inf`` where that overflows),
    ``gibbs_sum`` the sum of its reciprocals; when a term overflows, the sum is taken in
    log-sum-exp form."""
    n = rho.shape[0]
    mass = 0.0
    sa = 0.0
    sb = gibbs_sum
    for i in range(n):
        r = rho[i, 0]
        if r > 0.0:
            mass += r
            sa += r * r * inv_gibbs[i]
    if not mass > 0.0:
        return 0.0
    if math.isfinite(sa):
        return max(0.0, 0.5 * (math.log(sa) + math.log(sb)) - math.log(mass))
    top_b = -math.inf  # deep potentials: sum rho^2 / rho_inf overflows
    for i in range(n):
        top_b = max(top_b, log_gibbs[i])
    top_a = -math.inf
    for i in range(n):
        r = rho[i, 0]
        if r > 0.0:
            top_a = max(top_a, 2.0 * math.log(r) - (log_gibbs[i] - top_b))
    sa = 0.0
    for i in range(n):
        r = rho[i, 0]
        if r > 0.0:
            sa += math.exp(2.0 * math.log(r) - (log_gibbs[i] - top_b) - top_a)
    return max(0.0, 0.5 * (top_a + math.log(sa) + math.log(sb)) - math.log(mass))


@nb.njit(cache=True, error_model="numpy")
def _advance(rho, span, lines, Z, W, cwork, gibbs, rtol, fixed_nodes, fe, check_energy):
    """One output interval in one compiled call: the node count (:func:`nodes_for` from the
    amplification of ``rho``, or ``fixed_nodes`` when positive), :func:`exponential_apply`
    with that rule (row ``(n - 4)/2`` of ``Z, W``), and the free energy of the result (NaN
    unless ``check_energy``). Returns ``(ok, clipped, n, log_amp, F)``."""
    log_amp = log_amplification(rho, gibbs[0], gibbs[1], gibbs[2])
    n = fixed_nodes if fixed_nodes > 0 else nodes_for(rtol, log_amp)
    row = (n - NODES_RANGE[0]) // 2
    ok, clipped = exponential_apply(rho, span, lines, Z[row, :n // 2], W[row, :n // 2], cwork)
    F = np.nan
    if ok and check_energy:
        V, log_m, T, vol = fe
        F = nw.free_energy_psi(rho, V, V, log_m, T, vol)
    return ok, clipped, n, log_amp, F


class ExponentialFVSolver(Resumable, SolverBase):
    r"""Exact-in-time stepping of a linear 1D finite-volume problem by the matrix
    exponential (module doc): one output interval is :math:`n/2` complex tridiagonal solves.

    Parameters
    ----------
    pde : DistributionalDynamicsPDE
        A one-dimensional grid model with diffusion and no interaction
        (:func:`ddsolve.schemes.fv.auto.linear_operator_reason`); the face flux is Scharfetter–Gummel.
    rtol : float or "auto"
        Bound on the relative quadrature error: each interval takes the fewest nodes whose
        error bound, times the amplification of its start (:func:`log_amplification`), is
        at most a tenth of it. ``"auto"``: :math:`C/n^2` for :math:`n` cells
        (:func:`ddsolve.schemes.fv.auto.grid_tolerances`, method ``exponential``).
    nodes : int, optional
        The number of contour nodes (even, at most 24), instead of the one ``rtol`` implies.
    check_energy : bool
        Evaluate the discrete free energy after every interval and count increases.

    References
    ----------
    .. [1] J. A. C. Weideman, Optimizing Talbot's contours for the inversion of the Laplace
       transform, SIAM J. Numer. Anal. 44 (2006) 2342-2362.
    .. [2] L. N. Trefethen, J. A. C. Weideman, T. Schmelzer, Talbot quadratures and rational
       approximations, BIT 46 (2006) 653-670.

    Examples
    --------
    >>> from ddsolve import GridModel, Model, cartesian, make_potential, DistributionalDynamicsPDE
    >>> gm = GridModel(Model(potential=make_potential("quadratic", 1), beta=1.0), cartesian([-6, 6], 120))
    >>> solver = ExponentialFVSolver(DistributionalDynamicsPDE(gm, order=1))
    >>> state = gm.coords.field(gm.gibbs())
    >>> solver.make_stepper(state)(state, 0.0, 1.0)
    1.0
    """

    name = "fv-exponential"

    def __init__(self, pde: DistributionalDynamicsPDE, rtol: float | str = "auto",
                 nodes: int | None = None, check_energy: bool = True, **kwargs) -> None:
        super().__init__(pde, **kwargs)
        why = linear_operator_reason(pde)
        if why is not None:
            raise ValueError(f"time = 'exponential' {why}; use time = 'implicit' or 'auto'")
        rtol, _, reason = grid_tolerances(pde.grid_model.coords, "exponential", rtol, "auto")
        reason = reason.split("; ")[0]  # no atol: the quadrature error is relative
        if not rtol > 0:
            raise ValueError(f"rtol must be positive for the exponential integrator, got {rtol}")
        lo, hi = NODES_RANGE
        if nodes is not None and not (isinstance(nodes, (int, np.integer)) and not isinstance(nodes, bool)
                                      and lo <= nodes <= hi and nodes % 2 == 0):
            raise ValueError(f"nodes must be an even integer in [{lo}, {hi}], got {nodes!r}")
        self.rtol = float(rtol)
        self.fixed_nodes = None if nodes is None else int(nodes)
        self.check_energy = bool(check_energy)
        self.Z = np.zeros(((hi - lo) // 2 + 1, hi // 2), complex)  # row i: the rule of n = lo + 2i
        self.W = np.zeros_like(self.Z)
        for i, n in enumerate(range(lo, hi + 1, 2)):
            self.Z[i, :n // 2], self.W[i, :n // 2] = talbot_nodes(n)
        self.prob = nw.make_problem(pde, "sg", nonlocal_implicit=False)
        work = nw.make_newton_workspace(pde)
        n0 = pde.shape2d[0]
        _unit_lines(np.ones((n0, 1)), 0.0, self.prob, work, np.zeros((n0, 1)))
        g, cr = work[0], work[1]
        self.lines = (g[11].copy(), g[12].copy(), g[13].copy(), cr[0].copy(), cr[1].copy())
        self.cwork = tuple(np.zeros((n0, hi // 2), complex) for _ in range(3))
        V, log_m, T, vol = self.prob[1], self.prob[2], float(self.prob[3]), float(self.prob[8])
        self._fe = (V, log_m, T, vol)
        log_gibbs = np.ascontiguousarray((log_m - V / T).reshape(n0))
        with np.errstate(over="ignore"):
            inv = np.exp(log_gibbs.max() - log_gibbs)
        self.gibbs = (log_gibbs, inv, float(np.sum(np.exp(log_gibbs - log_gibbs.max()))))
        self._counters = {"steps": 0, "energy_increases": 0, "solves": 0}
        self._F = math.inf
        self._log_amp_max = 0.0
        rule = (f"{self.fixed_nodes} contour nodes (given)" if nodes is not None else
                f"contour nodes per interval: the fewest with error bound x amplification <= "
                f"{RTOL_SHARE:g} rtol")
        self.info.update(method="exponential", flux="sg", rtol=self.rtol, tolerance_reason=f"{reason}; {rule}",
                         adaptive=False, dt_adaptive=False, linear_solver="thomas (shifted, complex)",
                         backend="numba (ddsolve.schemes.fv.exponential)", clipped_max=0.0,
                         nodes_max=0, amplification_max=1.0)

    def nodes(self, rho: np.ndarray) -> tuple[int, float]:
        """``(n, log_amp)``: the node count for an interval starting from ``rho`` (shape
        ``(M, 1)``) and its log amplification (:func:`log_amplification`)."""
        log_amp = float(log_amplification(rho, *self.gibbs))
        n = self.fixed_nodes if self.fixed_nodes is not None else nodes_for(self.rtol, log_amp)
        return int(n), log_amp

    def make_stepper(self, state, dt=None):
        eq: DistributionalDynamicsPDE = self.pde
        code, params = eq.sched
        counters, solver, info = self._counters, self, self.info
        fixed = self.fixed_nodes or 0
        info.update(counters)

        def stepper(state, t_start: float, t_end: float) -> float:
            span = schedule_integral(code, params, t_start, t_end)
            if span > 0.0:
                rho = np.array(state.data, dtype=float).reshape(-1, 1)
                ok, clipped, n, log_amp, F = _advance(
                    rho, span, solver.lines, solver.Z, solver.W, solver.cwork, solver.gibbs,
                    solver.rtol, fixed, solver._fe, solver.check_energy)
                if not ok:
                    cause = "non-finite density (NaN or inf)"
                    raise SolverFailure(f"{cause}: a shifted solve of the exponential failed at "
                                        f"t={t_start:.6g}", t=float(t_start), cause=cause)
                state.data[...] = rho.reshape(state.data.shape)
                counters["steps"] += 1
                counters["solves"] += n // 2
                if clipped > info["clipped_max"]:
                    info["clipped_max"] = clipped
                if n > info["nodes_max"]:
                    info["nodes_max"] = n
                if log_amp > solver._log_amp_max:
                    solver._log_amp_max = log_amp
                    info["amplification_max"] = math.exp(log_amp)
                if solver.check_energy:
                    if F > solver._F + 1e-12 * max(1.0, abs(solver._F)):
                        counters["energy_increases"] += 1
                    solver._F = F
                info.update(counters)
            return float(t_end)

        return stepper

    def checkpoint_state(self) -> dict:
        return {"counters": np.array([self._counters[k] for k in ("steps", "energy_increases", "solves")]),
                "free_energy": np.array([self._F])}

    def restore_state(self, data) -> None:
        for k, v in zip(("steps", "energy_increases", "solves"), np.asarray(data["counters"]).tolist()):
            self._counters[k] = int(v)
        self._F = float(np.asarray(data["free_energy"])[0])
        self.info.update(self._counters)
