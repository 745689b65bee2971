r"""Error-controlled implicit and IMEX time stepping of the finite-volume scheme.

The semi-discrete equation :math:`\dot\rho = L_h(\rho, t)` (face fluxes of
:mod:`ddsolve.schemes.fv.newton`) is integrated by an ESDIRK method of
:mod:`ddsolve.schemes.fv.tableaux`,

.. math:: z_i = \rho^n + \Delta t\sum_{j<i}a^I_{ij}k_j + \Delta t\,\gamma\,k_i, \qquad
          k_i = L_h(z_i, t_n + c_i\Delta t;\ \Psi_i), \qquad
          \rho^{n+1} = \rho^n + \Delta t\sum_j b_jk_j = z_s,

(stiffly accurate). The fully implicit methods take the potential of the stage itself,
:math:`\Psi_i = V + \mathcal U z_i`, and, once the stage equation is solved to its
tolerance, the stage rate from the stage equation,
:math:`k_i = (z_i - \rho^n - \Delta t\sum_{j<i}a^I_{ij}k_j)/(\gamma\Delta t)`, rather than
:math:`L_h(z_i)`: the two differ by the stage residual over :math:`\gamma\Delta t`, and
with :math:`L_h(z_i)` a residual in the stiff components (large :math:`\|\Delta t J\|`)
is passed on to the explicit parts of the later stages (Hairer & Wanner, Solving ODEs II,
§IV.8). Measured on the Curie–Weiss flagship: on 2400 cells at rtol 1e-2, ESDIRK4 takes 18
steps with none failed against 81 with 11 failed (log-mean flux) or a stall at t ≈ 7
(``sg``); a run at :math:`\xi = 10^{12}` whose step was held near 1e-11 by round-off in the
residual finishes in 54 steps.

The IMEX pairs are *semi-implicit* in the sense of Boscarino, Filbet & Russo (J. Sci.
Comput. 68, 2016): the interaction enters through the potential of the explicit stage
value,

.. math:: \Psi_i = V + \mathcal U u_i, \qquad u_i = \rho^n + \Delta t\sum_{j<i}a^E_{ij}k_j,

and the transport it drives is implicit, so a stage is the implicit equation of a
potential held fixed — linear in the density for the ``sg`` flux, an M-matrix step, one
direct solve — and stays positive whatever the step (an explicit interaction *flux*
would be held to its transport CFL bound). Writing :math:`\dot\rho = F(\rho, \rho)` with
:math:`F(u, v) = L_h(v;\ V + \mathcal Uu)`, this is the additive (partitioned) Runge–Kutta
method of the pair applied to the explicit argument :math:`u` and the implicit argument
:math:`v`, with the order of the pair. Each stage is a Newton solve of
:func:`~ddsolve.schemes.fv.newton.newton_solve` in compiled code (one direct solve when
the stage operator is linear); the whole step loop, error estimate and controller run in
one compiled call per output interval.

**Error control.** The local error estimate :math:`e = \Delta t\sum_j(b_j-\hat b_j)k_j`
is measured in the weighted RMS norm
:math:`\|e\| = \big(\tfrac1M\sum_j (e_j / (a_{tol} + r_{tol}\max(|\rho^n_j|,|\rho^{n+1}_j|)))^2\big)^{1/2}`
(``atol`` is in units of the density) and the step is accepted when :math:`\|e\|\le1`.
The next step is the PI controller of Gustafsson (ACM TOMS 20, 1994),
:math:`\Delta t_{new} = \Delta t\,\min(5, \max(0.2,\ 0.9\,\|e_n\|^{-0.7/k}\|e_{n-1}\|^{0.4/k}))`
with :math:`k` one more than the embedded order; a rejected step is retried with
:math:`\max(0.2, 0.9\|e\|^{-1/k})` times the step, and a step whose Newton solve fails (or,
without diffusion, whose stage goes negative) with a quarter of it. A retried step
refactorises the Newton matrix at every iteration (no kept factors).

**Invariants.** Mass: every :math:`k_j` sums to zero exactly and each stage is rescaled to
its exact mass, so :math:`\sum_j\rho_j` is conserved to round-off. Positivity: with
diffusion the stages (and, for stiffly accurate implicit methods, the step) are positive
by construction; without diffusion a negative stage rejects the step. Free energy: the
discrete free energy is evaluated after every accepted step and increases are counted
(``energy_increases``); the semi-discrete ``sg`` and log-mean schemes dissipate it, and
the integrators keep the decay up to the local error (tested).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from pde.solvers.base import SolverBase

from ddsolve.model.schedule import schedule_value
from ddsolve.schemes.fv import newton as nw
from ddsolve.schemes.fv.auto import grid_tolerances
from ddsolve.schemes.fv.kernels import STATUS_DT, STATUS_NAN, STATUS_NEGATIVE, STATUS_OK
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SolverFailure
from ddsolve.schemes.fv.tableaux import TABLEAUX, get_tableau
from ddsolve.schemes.stepping import Resumable

__all__ = ["AdaptiveFVSolver", "ark_advance", "STATUS_STEPS"]

STATUS_STEPS = 4
_MESSAGES = {STATUS_NAN: "non-finite density (NaN or inf)",
             STATUS_DT: "time step collapsed below dt_min (Newton failures or error test)",
             STATUS_NEGATIVE: "negative density", STATUS_STEPS: "step budget exhausted (run.max_steps)"}
# counters: steps, rejected (error), failed (Newton / negative), newton its, linear its,
# energy increases;  state: err_prev, F_prev, dt_proposal
_C_STEPS, _C_REJ, _C_FAIL, _C_NEWTON, _C_LIN, _C_ENERGY, _C_FACT = range(7)
_COUNTER_NAMES = ("steps", "rejected", "failed", "newton_iterations", "linear_iterations",
                  "energy_increases", "factorizations")


@nb.njit(cache=True, error_model="numpy")
def _wnorm(e, y0, y1, rtol, atol):
    acc = 0.0
    n0, n1 = e.shape
    for i in range(n0):
        for j in range(n1):
            sc = atol + rtol * max(abs(y0[i, j]), abs(y1[i, j]))
            v = e[i, j] / sc
            acc += v * v
    return math.sqrt(acc / (n0 * n1))


@nb.njit(cache=True, error_model="numpy")
def _combine(out, base, w, K, n, scale):
    """``out = base + scale * sum_{j<n} w[j] K[j]`` in one pass (terms with ``w[j] = 0``
    skipped; ``base`` may be None for zero)."""
    n0, n1 = out.shape
    for i in range(n0):
        for jj in range(n1):
            acc = 0.0 if base is None else base[i, jj]
            for j in range(n):
                if w[j] != 0.0:
                    acc += scale * w[j] * K[j, i, jj]
            out[i, jj] = acc


@nb.njit(cache=True, error_model="numpy")
def _combine_pair(out, out2, base, w, w2, K, n, scale):
    """:func:`_combine` for two weight rows over the same ``K`` in one pass (the implicit and
    the explicit stage values of a semi-implicit IMEX stage)."""
    n0, n1 = out.shape
    for i in range(n0):
        for jj in range(n1):
            acc = base[i, jj]
            acc2 = acc
            for j in range(n):
                kj = scale * K[j, i, jj]
                acc += w[j] * kj
                acc2 += w2[j] * kj
            out[i, jj] = acc
            out2[i, jj] = acc2


@nb.njit(cache=True, error_model="numpy")
def _clip_within_tolerance(y, ref, rtol, atol):
    """Set negative values of ``y`` to zero and restore its sum by a scalar, provided the
    negative part is within the error tolerance (weighted RMS norm at most one, weights
    from ``ref``); returns False, leaving ``y`` unchanged, when it is not."""
    n0, n1 = y.shape
    acc = 0.0
    neg = False
    for i in range(n0):
        for j in range(n1):
            if y[i, j] < 0.0:
                neg = True
                v = y[i, j] / (atol + rtol * abs(ref[i, j]))
                acc += v * v
    if not neg:
        return True
    if math.sqrt(acc / (n0 * n1)) > 1.0:
        return False
    mass = np.sum(y)
    for i in range(n0):
        for j in range(n1):
            y[i, j] = max(y[i, j], 0.0)
    have = np.sum(y)
    if have > 0.0:
        y *= mass / have
    return True


@nb.njit(cache=True, error_model="numpy")
def _initial_step(rho, t, span, dt_max, rtol, atol, prob, work, k0):
    """Starting step ``0.01 |y|/|f|`` in the error norm (Hairer, Nørsett & Wanner, Solving
    ODEs I, §II.4), bounded by the span and ``dt_max``; fills the rate at ``rho``."""
    nw.implicit_rate(rho, t, prob, work, True, k0)
    d0 = _wnorm(rho, rho, rho, rtol, atol)
    d1 = _wnorm(k0, rho, rho, rtol, atol)
    h0 = 0.01 * d0 / d1
    if not (d0 >= 1e-5 and d1 >= 1e-5 and math.isfinite(h0)):  # also a non-finite rate
        h0 = 1e-6
    return min(h0, span, dt_max)


@nb.njit(cache=True, error_model="numpy")
def ark_advance(rho, t, t_end, tab, prob, ctrl, work, stage_work, counters, state):
    """Integrate from ``t`` to exactly ``t_end`` in place. Returns ``(status, t)``; on
    failure ``rho`` holds the last accepted state and ``t`` its time.

    ``tab`` is :meth:`Tableau.packed`; ``ctrl = (rtol, atol, dt_min, dt_max, newton_tol,
    max_newton, adaptive, max_steps, check_energy, imex, reuse_jacobian)``; ``stage_work = (kI, kE, y0, z,
    err, tmp)`` with ``kI`` of shape ``(stages, n0, n1)`` (the stage rates) and ``kE`` of shape
    ``(1, n0, n1)`` (scratch: the explicit stage value of the IMEX methods); ``state = [err_prev, F_prev,
    dt, have_k0, t_k0]`` carries the controller across calls (``dt`` is the next step to
    try, in fixed-step mode the step; ``kI[0]`` holds the rate at ``t_k0`` when ``have_k0``
    is set: stiffly accurate methods reuse the last stage's rate, "first same as last").
    """
    AI, AE, b, bhat, c, kexp = tab
    rtol, atol, dt_min, dt_max, newton_tol, max_newton, adaptive, max_steps, check_energy, imex, reuse = ctrl
    kI, kE, y0, z, err, tmp = stage_work
    u = kE[0]  # the explicit stage value of the semi-implicit IMEX methods
    s = b.size
    db = b - bhat  # the weights of the error estimate
    T = prob[3]
    psi_scratch = work[0][22]
    if state[2] <= 0.0 and t < t_end:
        state[2] = _initial_step(rho, t, t_end - t, dt_max, rtol, atol, prob, work, kI[0])
        state[3] = 1.0
        state[4] = t
    dt_fixed = state[2]
    was_rejected = False
    while t < t_end:
        if counters[_C_STEPS] >= max_steps:
            return STATUS_STEPS, t
        dt = state[2]
        h = dt
        shortened = False
        if t + h >= t_end or t_end - (t + h) < 1e-10 * h:
            h = t_end - t
            shortened = h < dt
        y0[:] = rho
        if not prob[11]:
            # Newton factors are kept across the stages of one step only (simplified
            # Newton); the exact factors of a linear operator stay cached
            work[4][1] = np.nan
        ok = True
        # warm starts within the step only (the first implicit stage starts from y0 itself,
        # so a run restarted from a checkpoint between steps takes the same iterates)
        warm = False
        for i in range(s):
            ti = t + c[i] * h
            if i == 0:
                z[:] = y0
                if state[3] != 0.0 and state[4] == t:
                    continue  # first same as last: the rates of the accepted last stage
                nw.implicit_rate(z, ti, prob, work, True, kI[0])
                state[3] = 1.0
                state[4] = t
                continue
            if imex:
                # semi-implicit: the potential of the explicit stage value
                # u_i = y0 + h sum_j aE_ij k_j, the transport it drives implicit
                _combine_pair(tmp, u, y0, AI[i], AE[i], kI, i, h)
            else:
                _combine(tmp, y0, AI[i], kI, i, h)
            # a negative explicit part of the stage: within the tolerance it is clipped
            # (mass kept), beyond it the step is refused
            if not _clip_within_tolerance(tmp, y0, rtol, atol):
                ok = False
                break
            if imex:
                nw.freeze_potential(u, prob, work)
            # guess: the previous stage. A step retried after a failure or a rejection
            # refactorises at every iteration (kept factors stop at the tolerance, and their
            # inexact stage rates are what sent a loose-tolerance run on a fine grid into
            # thousands of failed steps: a negative explicit stage combination, measured)
            # warm: the guess is the previous stage's solution, whose rate and face
            # derivatives the workspace still holds (not for the IMEX stages, whose
            # potential changes from stage to stage)
            xi = schedule_value(prob[4], prob[5], ti)
            if nw.fresh_open_line(z, xi, prob, work):
                # what newton_solve would call, called with the members it takes: passing
                # the tuples into the inlined newton_solve cost 17 unpaired reference counts
                # a stage (counted on 96 cells: 314 -> 229 a step; newton's module doc)
                V, log_m, T_, hx, g, rec, clo, chi, fac, cyc = nw.line_members(prob, work)
                conv, its, lits, nfac = nw.line_stage(z, tmp, 1.0, h * AI[i, i], xi, V, log_m, T_, hx, g, rec,
                                                      clo, chi, fac, cyc, kI[i])
            else:
                conv, its, lits, nfac = nw.newton_solve(z, tmp, 1.0, h * AI[i, i], ti, prob, work, not imex,
                                                        newton_tol, int(max_newton), kI[i],
                                                        reuse and not was_rejected, warm and not imex)
            warm = True
            if imex:
                nw.release_potential(work)
            counters[_C_NEWTON] += its
            counters[_C_LIN] += lits
            counters[_C_FACT] += nfac
            if not conv:
                ok = False
                break
            if T == 0.0 and not _clip_within_tolerance(z, y0, rtol, atol):
                ok = False
                break
            if not imex:
                # the stage rate from the stage equation, k_i = (z_i - r_i)/(gamma h), not
                # L_h(z_i): a stage solved to the tolerance tau has L_h(z_i) off by up to
                # tau/(gamma h), which the explicit combinations of the later stages carry
                # with the stiffness ||h J|| (module doc)
                ki = kI[i]
                ki[:] = z
                ki -= tmp
                ki *= 1.0 / (h * AI[i, i])
        # rho^{n+1} = y0 + h sum_j b_j k_j is the last stage (stiffly accurate; the IMEX
        # pairs share b)
        if ok:
            _combine(err, None, db, kI, s, h)
            enorm = _wnorm(err, y0, z, rtol, atol)
            if not math.isfinite(enorm):
                ok = False
        if not ok:
            counters[_C_FAIL] += 1
            state[2] = 0.25 * h
            was_rejected = True
            # below dt_min, below an ulp of t, or not a number
            if not (state[2] >= dt_min) or t + state[2] == t:
                return STATUS_DT, t
            continue
        if adaptive and enorm > 1.0:
            counters[_C_REJ] += 1
            state[2] = h * max(0.2, 0.9 * enorm ** (-1.0 / kexp))
            was_rejected = True
            if not (state[2] >= dt_min) or t + state[2] == t:
                return STATUS_DT, t
            continue
        # accept
        for v in z.flat:
            if not math.isfinite(v):
                return STATUS_NAN, t
        rho[:] = z
        t = t_end if h == t_end - t else t + h
        counters[_C_STEPS] += 1
        if imex:
            # the last stage's rate is that of the frozen potential: the next step's is new
            state[3] = 0.0
        else:
            kI[0][:] = kI[s - 1]
            state[3] = 1.0
            state[4] = t
        if check_energy:
            F = nw.free_energy(rho, prob, psi_scratch)
            if F > state[1] + 1e-12 * max(1.0, abs(state[1])):
                counters[_C_ENERGY] += 1
            state[1] = F
        if adaptive:
            e = max(enorm, 1e-10)
            if not shortened:
                fac = 0.9 * e ** (-0.7 / kexp) * state[0] ** (0.4 / kexp)
                fac = min(5.0, max(0.2, fac))
                if was_rejected:
                    fac = min(fac, 1.0)
                state[2] = min(dt_max, h * fac)
                state[0] = e
        elif h < dt_fixed and not shortened:
            state[2] = min(dt_fixed, 2.0 * h)  # fixed step: grow back after a failure
        was_rejected = False
    return STATUS_OK, t


class AdaptiveFVSolver(Resumable, SolverBase):
    """Error-controlled ESDIRK / IMEX stepping of the finite-volume scheme (module doc).

    Parameters
    ----------
    pde : DistributionalDynamicsPDE
        Supplies the grid model; the spatial scheme is set by ``flux``.
    method : str
        A name in :data:`~ddsolve.schemes.fv.tableaux.TABLEAUX`: ``trbdf2`` (2nd order),
        ``esdirk3``, ``esdirk4`` (implicit, the default), ``ark3``, ``ark4`` (IMEX:
        semi-implicit, the interaction potential from the explicit stage value).
    rtol, atol : float or "auto"
        Tolerances of the local error (``atol`` in density units). ``"auto"`` (the default,
        as for the ``scheme.rtol``/``scheme.atol`` config keys) follows the grid:
        :math:`r_{tol} = C/\\min_a n_a^2`, :math:`a_{tol} = 10^{-3} r_{tol}`
        (:func:`ddsolve.schemes.fv.auto.grid_tolerances`), which keeps the time error below a
        tenth of the spatial error as the grid is refined.
    flux : str
        A name in :data:`~ddsolve.schemes.fv.newton.FLUXES`, or ``"auto"``: without diffusion
        ``upwind``, with diffusion ``sg`` (Scharfetter–Gummel). ``sg`` and ``logmean`` are
        both second order, dissipate the discrete free energy and keep the discrete Gibbs
        state. ``sg`` is the default because its stages are one direct solve when the
        implicit operator is linear (no interaction, or an IMEX method:
        ``benchmarks/bench_fv.py`` part (d) measures it 1.6-2.1x faster than ``logmean`` with
        ESDIRK3 on OU at equal error), and because it is exponentially fitted: at large cell
        Péclet numbers the fully implicit ``logmean`` run opens a hole in the far tail
        (Curie–Weiss β = 3 on 300 cells, ESDIRK4, θ = 20 and 100: the tail is not monotone
        and falls to the density floor; ``sg`` keeps it monotone, and at θ = 20 down to
        1e-226). With the cell-average potential of earlier versions the ``logmean`` Newton
        (on the logarithms of tiny densities) also failed steps by the thousand (θ = 100:
        261729 of 513016); with centre values it fails none (213 steps; ``sg`` 206 —
        ``benchmarks/bench_implicit.py`` part (e) with ``--logmean``).
    dt : float, optional
        First step (default: estimated from the initial rate). With ``adaptive=False`` the
        fixed step (halved on Newton failure).
    dt_min, dt_max : float
        Smallest step before failure, largest step allowed.
    max_newton : int
        Newton iterations per stage before the step is retried with a quarter of it.
    newton_kappa : float
        The stage residual (:math:`L^1`) must be below ``newton_kappa`` times the error
        tolerance in :math:`L^1`, :math:`a_{tol}|\\Omega| + r_{tol}\\,\\mathrm{mass}`
        (with ``adaptive=False``: times :math:`10^{-8}\\,\\mathrm{mass}`). A stage residual
        :math:`\\tau` moves a step by up to about :math:`\\tau/\\gamma` (the stage rates come
        from the stage equation), so a long fixed-step run meant as a reference needs a
        smaller ``newton_kappa``.
    max_steps : int
        Budget of accepted steps for the whole run.
    reuse_jacobian : bool
        Simplified Newton: within a step, keep the factors of the previous stage solve (all
        stages share :math:`\\gamma\\Delta t`) while they contract the residual
        (:mod:`ddsolve.schemes.fv.newton`); ``False`` refactorises at every Newton
        iteration. ``info["factorizations"]`` counts them.

    Examples
    --------
    >>> from ddsolve import GridModel, Model, cartesian, make_potential, DistributionalDynamicsPDE
    >>> gm = GridModel(Model(potential=make_potential("quadratic", 1), beta=1.0), cartesian([-6, 6], 120))
    >>> solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), "esdirk3", rtol=1e-6)
    """

    name = "fv-adaptive"

    def __init__(self, pde: DistributionalDynamicsPDE, method: str = "esdirk4",
                 rtol: float | str = "auto", atol: float | str = "auto", flux: str = "auto",
                 dt: float | None = None,
                 dt_min: float = 1e-12, dt_max: float | None = None, max_newton: int = 8,
                 newton_kappa: float = 1e-2, adaptive: bool = True, check_energy: bool = True,
                 max_steps: int = 10**9, reuse_jacobian: bool = True, **kwargs) -> None:
        super().__init__(pde, **kwargs)
        self.tableau = get_tableau(method)
        if flux == "auto":
            flux = "sg" if pde.temperature > 0 else "upwind"
        rtol, atol, tolerance_reason = grid_tolerances(pde.grid_model.coords, method, rtol, atol)
        if not (rtol >= 0 and atol >= 0 and rtol + atol > 0):
            raise ValueError(f"rtol and atol must be non-negative and not both zero, got {rtol}, {atol}")
        if not adaptive and dt is None:
            raise ValueError("a fixed step (adaptive=False) needs dt")
        self.prob = nw.make_problem(pde, flux, nonlocal_implicit=not self.tableau.imex)
        self.flux = flux
        self.rtol, self.atol = float(rtol), float(atol)
        self.dt0 = None if dt is None else float(dt)
        self.dt_min = float(dt_min)
        self.dt_max = math.inf if dt_max is None else float(dt_max)
        self.max_newton, self.newton_kappa = int(max_newton), float(newton_kappa)
        self.adaptive, self.check_energy = bool(adaptive), bool(check_energy)
        self.max_steps = int(max_steps)
        self.reuse_jacobian = bool(reuse_jacobian)
        self.work = nw.make_newton_workspace(pde)
        s = self.tableau.stages
        n0, n1 = pde.shape2d
        self.stage_work = (np.zeros((s, n0, n1)), np.zeros((1, n0, n1))) + tuple(
            np.zeros((n0, n1)) for _ in range(4))
        self.info.update(method=method, flux=flux, rtol=self.rtol, atol=self.atol,
                         tolerance_reason=tolerance_reason,
                         adaptive=self.adaptive, dt_adaptive=self.adaptive, linear_solver=(
                             "thomas", "woodbury", "gmres")[self.prob[10]],
                         backend="numba (ddsolve.schemes.fv.adaptive)")

    def make_stepper(self, state, dt=None):
        eq: DistributionalDynamicsPDE = self.pde
        self._counters = counters = np.zeros(len(_COUNTER_NAMES), dtype=np.int64)
        self._fstate = fstate = np.array([1.0, np.inf, 0.0, 0.0, 0.0])
        tab = self.tableau.packed()
        rho0 = np.ascontiguousarray(np.asarray(state.data, dtype=float).reshape(eq.shape2d))
        mass = float(np.sum(rho0)) * self.prob[8]
        domain = rho0.size * self.prob[8]
        if self.adaptive:
            newton_tol = self.newton_kappa * (self.atol * domain + self.rtol * mass)
        else:
            newton_tol = self.newton_kappa * 1e-8 * max(mass, 1e-300)
        newton_tol = max(newton_tol, 1e-13 * max(mass, 1e-300))
        self.info.update(steps=0, rejected=0, failed=0, newton_iterations=0, linear_iterations=0,
                         energy_increases=0, dt_last=None, newton_tol=newton_tol)
        first = dt if dt is not None else self.dt0
        solver = self

        def stepper(state, t_start: float, t_end: float) -> float:
            rho = np.ascontiguousarray(np.asarray(state.data, dtype=float).reshape(eq.shape2d))
            if fstate[2] == 0.0 and first is not None:
                fstate[2] = first  # otherwise estimated in compiled code
            # a pause is the step budget of this call; the run's budget stays max_steps
            budget = min(solver.max_steps, int(counters[0]) + solver._pause_limit())
            ctrl = (solver.rtol, solver.atol, solver.dt_min, solver.dt_max, newton_tol,
                    float(solver.max_newton), solver.adaptive, budget,
                    solver.check_energy, solver.tableau.imex, solver.reuse_jacobian)
            status, t = ark_advance(rho, float(t_start), float(t_end), tab, solver.prob, ctrl,
                                    solver.work, solver.stage_work, counters, fstate)
            state.data[...] = rho.reshape(state.data.shape)
            solver.info.update(zip(_COUNTER_NAMES, counters.tolist()))
            solver.info["dt_last"] = float(fstate[2])
            if status == STATUS_STEPS and budget < solver.max_steps:
                return float(t)  # paused
            if status != STATUS_OK:
                cause = _MESSAGES[status]
                # the key that bounds the step (e.g. a fast time scale xi(t) needs a smaller one)
                hint = f"; scheme.dt_min = {solver.dt_min:.3g}" if status == STATUS_DT else ""
                raise SolverFailure(f"{cause} at t={t:.6g} (after {counters[0]} steps, next "
                                    f"dt={fstate[2]:.3g}{hint})", t=float(t), cause=cause)
            return float(t)

        return stepper

    def checkpoint_state(self) -> dict:
        # the controller's memory (last error, free energy, next step, first-same-as-last
        # flag and time), the counters, and the cached rate of the last stage
        return {"counters": self._counters.copy(), "fstate": self._fstate.copy(),
                "fsal_rate": self.stage_work[0][0].copy(), "fsal_rate_explicit": self.stage_work[1][0].copy()}

    def restore_state(self, data) -> None:
        counters = np.asarray(data["counters"])
        self._counters[:] = 0
        self._counters[:counters.size] = counters  # checkpoints before "factorizations"
        self._fstate[:] = data["fstate"]
        self.stage_work[0][0][...] = data["fsal_rate"]
        self.stage_work[1][0][...] = data["fsal_rate_explicit"]
        self.info.update(zip(_COUNTER_NAMES, self._counters.tolist()))
        self.info["dt_last"] = float(self._fstate[2])


INTEGRATORS = tuple(TABLEAUX)
