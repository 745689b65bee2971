r"""Compiled Newton kernels of the implicit finite-volume scheme.

Every implicit time step of the density equation (backward Euler, BDF2, the stages of the
ESDIRK and IMEX methods in :mod:`ddsolve.schemes.fv.adaptive`) solves

.. math:: a_0\,\rho - s\,L_h(\rho, t) = r, \qquad
          L_h(\rho) = G^\top F(\rho) \;\;(\textstyle\sum_j L_h(\rho)_j = 0),

for the cell averages :math:`\rho`, with :math:`s>0` (``dt`` times a diagonal coefficient)
and a right-hand side :math:`r`. Per axis, :math:`(G\phi)_f = (\phi_{R(f)}-\phi_{L(f)})/h`
and :math:`F` is one of two face fluxes:

* ``upwind`` (first order, Carrillo, Chertock & Huang, CiCP 17, 2015, with zero slopes):
  :math:`F = u^+\rho_L + u^-\rho_R`, :math:`u = -\xi\,G(\Psi+\beta^{-1}\log(\rho/m))`;
* ``logmean`` (second order, finite :math:`\beta`):
  :math:`F = -\xi\big(\Lambda(\rho_L,\rho_R)\,G(\Psi-\beta^{-1}\log m)+\beta^{-1}G\rho\big)` with
  the logarithmic mean :math:`\Lambda`; the semi-discrete free energy decays,
  :math:`\dot F_h = -\sum_f\Lambda_f(G\phi)_f^2 h|C|\le0`, and the discrete Gibbs state is
  stationary (the log-mean or "square-root approximation" flux; e.g. Chainais-Hillairet &
  Herda, IMA J. Numer. Anal. 2020);
* ``sg`` (Scharfetter & Gummel, IEEE Trans. Electron Devices 16, 1969; second order,
  finite :math:`\beta`): with :math:`x = (q_R - q_L)/\beta^{-1}`, :math:`q = \Psi-\beta^{-1}\log m`,
  and the Bernoulli function :math:`B(x) = x/(e^x-1)` (inline and vectorised,
  :mod:`ddsolve.schemes.fv.bernoulli`),
  :math:`F = \xi\beta^{-1}h^{-1}\big(B(x)\rho_L - B(-x)\rho_R\big)`. It is exact for a
  constant flux between two cells, keeps the discrete Gibbs state stationary, and is
  :math:`F = -\xi\,w_f\,G(q+\beta^{-1}\log\rho)` with a face weight :math:`w_f>0`, so the
  free energy decays as for the log-mean flux (the "B-schemes" of Chainais-Hillairet &
  Herda, 2020). It is **linear** in :math:`\rho` when :math:`\Psi` does not depend on
  :math:`\rho` (no interaction, or the implicit part of an IMEX splitting), and its implicit
  matrix is then an M-matrix (positivity for every step).

**Jacobian.** Each face flux depends on its two cells directly (``aL, aR``) and on the
potential difference through :math:`\partial F/\partial g` (``dg``); the local part is
therefore tridiagonal along every axis (cyclic on periodic axes), and the nonlocal part is
:math:`J_{nl}v = G^\top\,\mathrm{diag}(dg)\,G\,(\mathcal U v)`. The Newton matrix
:math:`A = a_0I - sJ` is solved in compiled code:

* 1D, no interaction in the implicit operator: the Thomas algorithm (cyclic: Sherman–Morrison);
* 1D, separable :math:`\mathcal U = \sum_k f_k\,\langle g_k,\cdot\rangle` of rank :math:`r`:
  exactly, by the Sherman–Morrison–Woodbury formula, :math:`O(rM)`;
* otherwise (2D, or dense/FFT interaction): restarted GMRES with right preconditioning by
  the alternating-line factorisation :math:`(a_0I - sJ_x)(I - \tfrac{s}{a_0}J_y)` of the
  local part (exact in 1D), matrix-free in the nonlocal part.

The tridiagonal lines are factorised once per linear solve (Thomas, without pivoting; a
vanishing or non-finite pivot fails the solve, and the step is retried smaller) and the
factors are applied to every right-hand side: the Woodbury columns and each GMRES iteration cost only
a forward and a back substitution. The face loop that evaluates :math:`L_h` fills the
Jacobian entries in the same pass.

**Simplified Newton.** With ``reuse``, the Woodbury and tridiagonal factors are kept from
one solve to the next while :math:`a_0` and :math:`s` are unchanged (all stages of an
ESDIRK step share :math:`s = \gamma\Delta t`; the step loop keeps them within a step): an
iteration then costs one rate evaluation and one substitution. The iteration with kept
factors converges linearly, at an observed rate :math:`\theta` (ratio of successive
residuals); as soon as :math:`\theta` exceeds :data:`NEWTON_CONTRACTION`, or reaching the
tolerance at that rate would take more than :data:`NEWTON_KEPT_ITERATIONS` further
iterations, the Jacobian is refactorised at the current iterate and the solve continues as
full Newton, with ``max_iter`` iterations of its own; an update that increased the
residual is undone first, and an update that would remove half of a cell's density or more
(where the cell holds more than its share of the tolerance) is recomputed with fresh
factors before it is applied (Hairer & Wanner, Solving ODEs II, §IV.8, on reusing the
Jacobian in implicit Runge–Kutta codes). The convergence test is on the residual either
way, so the solution meets the same tolerance.

**Warm start.** The guess of an ESDIRK stage after the first of a step is the previous
stage's solution, and the last thing that solve evaluated was the rate and the face
derivatives at that solution (before its mass rescaling). With ``warm`` the solve starts
from exactly that iterate and takes its residual from the kept rate, so the first
evaluation of :math:`L_h` is not repeated: one evaluation fewer per stage, with the guess
changed only by the rescaling (relative :math:`O(\text{tol})`). The kept pair is
invalidated by every other evaluation (:func:`implicit_rate`, a linear stage, a frozen
potential) and is used only for the same :math:`\xi(t)`. The first implicit stage of a
step starts from the step's initial value itself, so a run restarted from a checkpoint
between steps repeats the same iterates.

**Linear operators.** When the implicit operator is linear (``sg`` flux, :math:`\Psi=V`,
or a potential held fixed by :func:`freeze_potential`) :func:`newton_solve` solves the
stage equation directly, :math:`z = A^{-1}r`, from face coefficients alone (no flux or
derivative evaluations), and takes the rate as :math:`Jz` (on one open line, fresh
coefficients, factors, solution and rate in two sweeps, :func:`_sg_line_stage`); with
:math:`\Psi = V` the face coefficients and the factors of :math:`A` are kept while
:math:`\xi(t)`, :math:`a_0` and :math:`s` stay the same, so the stages of an ESDIRK step
(one diagonal coefficient) share one factorisation.

**Workspace and reference counts.** Every array a compiled call receives, alone or
inside a tuple, is a reference numba counts (an atomic increment on entry and a decrement
on exit); the grids of the workspace are therefore one array of shape ``(27, n0, n1)``
rather than a tuple of 27, and :func:`linear_solve` on a 1D grid calls the line kernels
directly (on 150 cells a semi-implicit stage 12.9 -> 7.4-8.2 us). The small wrappers of
the stage path (:func:`release_potential`, the 1D line factor and substitution, the face
matrix-vector product, the mass rescaling) are inlined by numba (``inline="always"``),
which lets the increments pair up and vanish (inlining the Newton iteration and the face
loops as well doubled the compile time for no measurable gain). Counted (numba's
``NRT_incref`` instrumented) on the 96-cell Curie–Weiss flagship, ARK4 still made 621
increments a step: a third of the compiled code's samples in a profile (``perf``) were in
the two counting functions, and making them non-atomic alone took the run from 700 to
600 us. Two rules account for most of them: an inlined function pairs up the counts
of its tuple arguments only where its code is straight-line (a branch, or a call that may
raise, leaves them in), and a call or an inlined function with a call in a branch pays for
every array of the problem and workspace tuples it receives (7 and 18). Hence the linear
stage on one open line (every semi-implicit stage in 1D) takes the members it uses
(:func:`fresh_open_line`, branch-free, decides; :func:`line_members` picks them;
:func:`line_stage` solves), and the IMEX integrator calls it directly rather than through
:func:`newton_solve`; :func:`freeze_potential` passes the members on, and
:func:`~ddsolve.schemes.fv.kernels.compute_psi` and
:func:`~ddsolve.model.schedule.schedule_value` are inlined. 621 -> 229 increments a step,
and the flagship run 640-692 -> 483-506 us (least of 7 x 300 runs, three alternating
processes each), with results the same to the bit.

**Positivity.** With diffusion the Newton update is additive where it keeps at least half
of a cell's density and multiplicative, :math:`\rho\leftarrow\rho\,e^{\delta/\rho}` (the
update of :math:`\log\rho`), where it would remove more, so iterates stay positive. After
convergence the iterate is rescaled by the scalar that restores
:math:`\sum_j a_0\rho_j = \sum_j r_j` exactly, so mass is conserved to round-off whatever
the Newton tolerance. For the upwind flux the matrix is an M-matrix
(column-diagonally dominant), so backward Euler is positivity preserving for every step.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ddsolve.grid.grid_model import DENSITY_FLOOR
from ddsolve.grid.interaction import KIND_NONE, KIND_SEPARABLE
from ddsolve.model.schedule import schedule_value
from ddsolve.schemes.fv.bernoulli import bernoulli, bernoulli_and_derivative
from ddsolve.schemes.fv.kernels import compute_psi

__all__ = ["FLUXES", "LIN_THOMAS", "LIN_SMW", "LIN_GMRES", "make_problem", "make_newton_workspace",
           "implicit_rate", "newton_solve", "free_energy", "jacobian_matvec", "linear_solve",
           "freeze_potential", "release_potential", "fresh_open_line", "line_members", "line_stage"]

LIN_THOMAS, LIN_SMW, LIN_GMRES = 0, 1, 2
FLUX_UPWIND, FLUX_LOGMEAN, FLUX_SG = 0, 1, 2
FLUXES = {"upwind": FLUX_UPWIND, "logmean": FLUX_LOGMEAN, "sg": FLUX_SG}
"""The implicit face fluxes by name (module doc); ``logmean`` and ``sg`` need diffusion."""
GMRES_RESTART = 30
NEWTON_CONTRACTION = 0.25
"""A Newton iteration with kept (earlier) factors must reduce the residual by this factor,
else the solve continues as full Newton."""
NEWTON_KEPT_ITERATIONS = 3
"""... and so must the predicted number of further iterations at the observed rate stay
within this many (a tight tolerance is reached faster by Newton's quadratic convergence)."""
_NEWTON_OK, _NEWTON_FAIL = 0, 1


def make_problem(eq, flux: str, nonlocal_implicit: bool = True) -> tuple:
    """The tuple the compiled kernels take: ``(inter, V2, log_m2, T, code, params, geom,
    flux, vol, nonlocal, lin, linear)`` for a
    :class:`~ddsolve.schemes.fv.pde.DistributionalDynamicsPDE`.

    ``flux`` is the code of :data:`FLUXES`; ``nonlocal`` says whether the interaction belongs
    to the implicit operator (False: the IMEX splitting, where it is treated explicitly);
    ``lin`` is the linear solver the structure allows (:data:`LIN_THOMAS`, :data:`LIN_SMW` or
    :data:`LIN_GMRES`); ``linear`` whether the implicit operator is linear in the density."""
    if flux not in FLUXES:
        raise ValueError(f"implicit flux must be one of {tuple(FLUXES)}, got {flux!r}")
    if flux != "upwind" and eq.temperature == 0:
        raise ValueError(f"the {flux!r} flux needs diffusion (finite beta); use 'upwind'")
    kind = eq.inter[0]
    has_nl = nonlocal_implicit and kind != KIND_NONE
    if not eq.two_d and not has_nl:
        lin = LIN_THOMAS
    elif not eq.two_d and kind == KIND_SEPARABLE:
        lin = LIN_SMW
    else:
        lin = LIN_GMRES
    return (eq.inter, eq.V2, eq.log_m2, float(eq.temperature), int(eq.sched[0]),
            np.asarray(eq.sched[1], dtype=float), eq.geom, FLUXES[flux],
            float(eq.grid_model.coords.cell_volume), bool(has_nl), lin,
            bool(flux == "sg" and not has_nl))


def make_newton_workspace(eq) -> tuple:
    """Arrays reused by the kernels for the grid of ``eq``: 27 grids (one array of shape
    ``(27, n0, n1)``; the last two hold the solution of the last converged Newton solve
    before its mass rescaling, and its rate), 4 corner vectors, the GMRES and Woodbury blocks (one row per
    separable term, and the r x r capacitance matrix), the factors of the tridiagonal lines
    (one array of shape ``(6, n0, n1)`` and three vectors), and the cache record:
    ``[xi of the face coefficients (NaN: not the linear operator's), a0 and s of the
    factors, xi of the factors, 1 if they include the Woodbury part, 1 while the potential
    is frozen (:func:`freeze_potential`), the operator of the cached solution and rate (0:
    none, invalidated by every other evaluation; 1: without, 2: with the interaction) and
    its xi]``."""
    n0, n1 = eq.shape2d
    rank = eq.inter[3].shape[0] if eq.inter[0] == KIND_SEPARABLE else 0
    M = n0 * n1
    # one array of 27 grids, not a tuple of 27: a tuple's every member is reference
    # counted whenever the kernels take it out of the workspace
    grids = np.zeros((27, n0, n1))
    corners = (np.zeros(n1), np.zeros(n1), np.zeros(n0), np.zeros(n0))
    m = GMRES_RESTART
    r = max(rank, 1)
    blocks = (np.zeros((m + 1, M)), np.zeros((m, M)), np.zeros((m + 1, m)),
              np.zeros((r, M)), np.zeros((r, M)), np.zeros((r, r)), np.zeros(r), np.zeros((r, r)))
    # factors of the tridiagonal lines in one array (x: c, 1/pivot, cyclic column; y: the
    # same), the cyclic corrections per line, and scratch
    lines = (np.zeros((6, n0, n1)), np.zeros((2, n1)), np.zeros((2, n0)), np.zeros(max(n0, n1)))
    rec = np.full(8, np.nan)
    rec[5] = 0.0
    rec[6] = 0.0
    return grids, corners, blocks, lines, rec


# ---------------------------------------------------------------------------------------
# faces: fluxes and their derivatives, the operator and its Jacobian
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy", inline="always")
def _log_mean(a, b, la, lb, ia, ib):
    """Logarithmic mean and its partial derivatives (series near ``a = b``), given the
    logarithms ``la, lb`` and reciprocals ``ia, ib`` of ``a, b > 0``."""
    D = lb - la
    if abs(D) < 1e-3:
        s = a + b
        d = b - a
        r = 1.0 / s
        q = d * d * r * r * (1.0 / 6.0)
        t = d * r * (1.0 / 3.0)
        return 0.5 * s - d * d * r * (1.0 / 6.0), 0.5 + t + q, 0.5 - t + q
    iD = 1.0 / D
    lam = (b - a) * iD
    return lam, (lam * ia - 1.0) * iD, (1.0 - lam * ib) * iD


@nb.njit(cache=True, error_model="numpy", inline="always")
def _sg_argument(psi, log_m, f, k, j, T, iT):
    r"""The argument :math:`x = \beta(q_k - q_f)` of the Bernoulli function at the ``sg``
    face between cells ``f`` and ``k`` of column ``j``, :math:`q = \Psi - \beta^{-1}\log m`
    (``iT`` :math:`= \beta`; the flux needs :math:`\beta < \infty`, :func:`make_problem`)."""
    return ((psi[k, j] - T * log_m[k, j]) - (psi[f, j] - T * log_m[f, j])) * iT


@nb.njit(cache=True, error_model="numpy", inline="always")
def _sg_faces(psi, log_m, rho, periodic, T, xi, h, aL, aR, dg, rate):
    r"""The coefficients of the ``sg`` face fluxes :math:`F = a_L\rho_L + a_R\rho_R` along
    axis 0 into ``aL, aR``, :math:`a_L = cB(x)`, :math:`a_R = -cB(-x) = -c(B(x) + x)`,
    :math:`c = \xi\beta^{-1}/h`; with ``rate`` also :math:`\partial F/\partial g` into
    ``dg``. Straight-line loops without calls (:mod:`ddsolve.schemes.fv.bernoulli`), which
    the compiler vectorises; the wrap face of a periodic axis comes after the loop."""
    n0, n1 = psi.shape
    iT = 1.0 / T
    c = xi * T * (1.0 / h)
    nf = n0 if periodic else n0 - 1
    for j in range(n1):
        if rate:
            for f in range(n0 - 1):
                x = _sg_argument(psi, log_m, f, f + 1, j, T, iT)
                B, dB = bernoulli_and_derivative(x)
                aL[f, j] = c * B
                aR[f, j] = -c * (B + x)
                dg[f, j] = xi * (dB * (rho[f, j] - rho[f + 1, j]) - rho[f + 1, j])
        else:
            for f in range(n0 - 1):
                x = _sg_argument(psi, log_m, f, f + 1, j, T, iT)
                B = bernoulli(x)
                aL[f, j] = c * B
                aR[f, j] = -c * (B + x)
        if nf == n0:  # the wrap face
            x = _sg_argument(psi, log_m, n0 - 1, 0, j, T, iT)
            B, dB = bernoulli_and_derivative(x)
            aL[n0 - 1, j] = c * B
            aR[n0 - 1, j] = -c * (B + x)
            if rate:
                dg[n0 - 1, j] = xi * (dB * (rho[n0 - 1, j] - rho[0, j]) - rho[0, j])


@nb.njit(cache=True, error_model="numpy")
def _axis_faces(rho, psi, log_m, logr, invr, h, periodic, xi, T, flux, fill_logs, aL, aR,
                dg, out, rate=True):
    """One pass over the faces along axis 0: face ``f`` joins cells ``f`` and ``f + 1``
    (``n0 - 1`` joins ``n0 - 1`` and 0 on a periodic axis). Adds the divergence of the
    fluxes to ``out`` and stores their derivatives ``aL, aR, dg``. With ``fill_logs`` the
    logarithms and reciprocals of the floored densities are computed into ``logr, invr``
    on the way (the first axis), otherwise read from them (the ``sg`` flux needs none).
    ``rate=False`` (``sg`` only: the coefficients of a linear operator) stores ``aL, aR``
    and nothing else."""
    n0, n1 = rho.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    logs = fill_logs and flux != FLUX_SG
    sg = flux == FLUX_SG
    logmean = flux == FLUX_LOGMEAN
    if sg:
        # the face coefficients in a vectorised loop of their own (the Bernoulli function
        # is most of the work), then, for the rate, the divergence of F = aL rho_L + aR rho_R
        _sg_faces(psi, log_m, rho, periodic, T, xi, h, aL, aR, dg, rate)
        if rate:  # the flux is linear in rho: the rate is the local part of J rho
            _axis_matvec(aL, aR, dg, rho[:0, :0], h, periodic, rho, out)
        return
    for j in range(n1):
        if logs:
            r0 = max(rho[0, j], DENSITY_FLOOR)
            logr[0, j] = math.log(r0)
            invr[0, j] = 1.0 / r0
        la, ia = logr[0, j], invr[0, j]
        if T == 0.0:
            qa = psi[0, j]
        elif flux != FLUX_UPWIND:
            qa = psi[0, j] - T * log_m[0, j]
        else:
            qa = psi[0, j] + T * (la - log_m[0, j])
        for f in range(nf):
            k = f + 1 if f + 1 < n0 else 0
            if logs and k > 0:
                rk = max(rho[k, j], DENSITY_FLOOR)
                logr[k, j] = math.log(rk)
                invr[k, j] = 1.0 / rk
            lb, ib = logr[k, j], invr[k, j]
            if T == 0.0:
                qb = psi[k, j]
            elif flux != FLUX_UPWIND:
                qb = psi[k, j] - T * log_m[k, j]
            else:
                qb = psi[k, j] + T * (lb - log_m[k, j])
            rl, rr = rho[f, j], rho[k, j]
            if logmean:
                g = (qb - qa) * inv_h
                a = max(rl, DENSITY_FLOOR)
                b = max(rr, DENSITY_FLOOR)
                lam, da, db = _log_mean(a, b, la, lb, ia, ib)
                F = -xi * (lam * g + T * (rr - rl) * inv_h)
                aL[f, j] = -xi * (da * g - T * inv_h)
                aR[f, j] = -xi * (db * g + T * inv_h)
                dg[f, j] = -xi * lam
            else:
                g = (qb - qa) * inv_h
                u = -xi * g
                if u > 0.0:
                    F = u * rl
                    aL[f, j] = u
                    aR[f, j] = 0.0
                    d = -xi * rl
                else:
                    F = u * rr
                    aL[f, j] = 0.0
                    aR[f, j] = u
                    d = -xi * rr
                dg[f, j] = d
                if T > 0.0:
                    c = d * inv_h * T
                    aL[f, j] -= c * ia
                    aR[f, j] += c * ib
            w = F * inv_h
            out[k, j] += w
            out[f, j] -= w
            la, ia, qa = lb, ib, qb


@nb.njit(cache=True, error_model="numpy")
def _axis_divergence(F, h, periodic, out):
    """``out += G^T F`` along axis 0 (inflow through the left face minus outflow)."""
    n0, n1 = out.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    for j in range(n1):
        for f in range(nf):
            k = f + 1 if f + 1 < n0 else 0
            w = F[f, j] * inv_h
            out[k, j] += w
            out[f, j] -= w


@nb.njit(cache=True, error_model="numpy")
def _axis_matvec(aL, aR, dg, w, h, periodic, v, out):
    """``out += J_axis v`` (local part) ``+ G^T dg G w`` (nonlocal part, skipped when ``w``
    has zero size) along axis 0."""
    n0, n1 = out.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    nonlocal_part = w.size > 0
    for j in range(n1):
        for f in range(nf):
            k = f + 1 if f + 1 < n0 else 0
            dF = aL[f, j] * v[f, j] + aR[f, j] * v[k, j]
            if nonlocal_part:
                dF += dg[f, j] * (w[k, j] - w[f, j]) * inv_h
            dF *= inv_h
            out[k, j] += dF
            out[f, j] -= dF


@nb.njit(cache=True, error_model="numpy")
def _faces(rho, psi, log_m, g, geom, xi, T, flux, out, rate):
    """:func:`_axis_faces` along every axis, into the face arrays of the workspace grids
    ``g``; ``out`` must hold zeros (it receives the rate) unless ``rate`` is False."""
    hx, hy, px, py = geom
    _axis_faces(rho, psi, log_m, g[1], g[24], hx, px, xi, T, flux, True, g[4], g[5], g[6], out, rate)
    if rho.shape[1] > 1:
        _axis_faces(rho.T, psi.T, log_m.T, g[1].T, g[24].T, hy, py, xi, T, flux, False, g[8].T,
                    g[9].T, g[10].T, out.T, rate)


@nb.njit(cache=True, error_model="numpy")
def implicit_rate(rho, t, prob, work, with_nonlocal, out):
    r"""``out = L_h(rho, t)``, filling the face derivatives in ``work`` for the Jacobian.

    ``with_nonlocal=False`` drops the interaction from :math:`\Psi`. While the cache
    record's entry 5 is 1 (:func:`freeze_potential`), :math:`\Psi` is the one the caller
    left in the workspace (``work[0][2]``), held fixed: the stages of the semi-implicit IMEX
    methods."""
    inter, V, log_m, T, code, params, geom, flux, vol, has_nl, lin, linear = prob
    g = work[0]
    psi = g[2]
    xi = schedule_value(code, params, t)
    nonlocal_psi = with_nonlocal and inter[0] != KIND_NONE
    frozen = work[4][5] == 1.0
    work[4][6] = 0.0  # the face data are no longer those of the cached solution
    if frozen:
        pass  # the caller's potential, already in psi (a semi-implicit IMEX stage)
    elif nonlocal_psi:
        compute_psi(inter, rho, V, psi)
    else:
        psi = V
    # the face coefficients are now those of the linear operator at xi, or not
    work[4][0] = xi if linear and not nonlocal_psi and not frozen else np.nan
    out[:] = 0.0
    _faces(rho, psi, log_m, g, geom, xi, T, flux, out, True)


@nb.njit(cache=True, error_model="numpy", inline="always")
def freeze_potential(u, prob, work):
    r"""Hold :math:`\Psi = V + \mathcal U u` fixed in the operator (:func:`implicit_rate`)
    until :func:`release_potential`: the implicit operator of a semi-implicit stage, which
    is linear in the density for the ``sg`` flux."""
    _freeze(u, prob[0], prob[1], work[0], work[4])


@nb.njit(cache=True, error_model="numpy", inline="always")
def _freeze(u, inter, V, g, rec):
    """:func:`freeze_potential` on the members it uses (an inlined function binds its
    arguments, and the reference counts of a whole workspace tuple did not pair up here:
    28 -> 11 increments per stage, counted)."""
    compute_psi(inter, u, V, g[2])
    rec[5] = 1.0
    rec[0] = np.nan  # the face coefficients are no longer those of Psi = V
    rec[6] = 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def release_potential(work):
    r"""End :func:`freeze_potential`: :math:`\Psi` follows the density again."""
    work[4][5] = 0.0
    work[4][0] = np.nan
    work[4][6] = 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _faces_matvec(g, geom, v, w, out):
    r"""``out = J v`` from the face derivatives in the workspace grids ``g``, along every
    axis; ``w`` is :math:`\mathcal U v` for the nonlocal part, or of zero size."""
    hx, hy, px, py = geom
    out[:] = 0.0
    _axis_matvec(g[4], g[5], g[6], w, hx, px, v, out)
    if v.shape[1] > 1:
        _axis_matvec(g[8].T, g[9].T, g[10].T, w.T, hy, py, v.T, out.T)


@nb.njit(cache=True, error_model="numpy")
def jacobian_matvec(v, prob, work, with_nonlocal, out):
    """``out = J v`` at the state of the last :func:`implicit_rate` call."""
    inter = prob[0]
    g = work[0]
    w = g[21]
    wv = w[:0, :0]
    if with_nonlocal and inter[0] != KIND_NONE:
        compute_psi(inter, v, g[23], w)  # g[23] stays zero: U v without V
        wv = w
    _faces_matvec(g, prob[6], v, wv, out)


# ---------------------------------------------------------------------------------------
# linear algebra: (cyclic) tridiagonal lines, Woodbury, GMRES
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy")
def _axis_tridiag(aL, aR, h, periodic, diag_shift, s, sub, dia, sup, clo, chi):
    """Lines of ``diag_shift*I - s*J_axis`` along axis 0: ``sub[i] = A[i, i-1]``,
    ``sup[i] = A[i, i+1]``, corners ``chi = A[0, n-1]`` and ``clo = A[n-1, 0]``."""
    n0, n1 = aL.shape
    inv_h = 1.0 / h
    for j in range(n1):
        for i in range(n0):
            sub[i, j] = 0.0
            sup[i, j] = 0.0
            dia[i, j] = diag_shift
        clo[j] = 0.0
        chi[j] = 0.0
        nf = n0 if periodic else n0 - 1
        for f in range(nf):
            cl = s * aL[f, j] * inv_h
            cr = s * aR[f, j] * inv_h
            dia[f, j] += cl
            if f + 1 < n0:
                k = f + 1
                sub[k, j] -= cl
                dia[k, j] -= cr
                sup[f, j] += cr
            else:  # wrap-around face between n0-1 (left) and 0 (right)
                dia[0, j] -= cr
                chi[j] -= cl  # A[0, n0-1]
                clo[j] += cr  # A[n0-1, 0]
        if periodic and n0 == 2:  # both corners are ordinary off-diagonal entries
            sup[0, j] += chi[j]
            sub[1, j] += clo[j]
            clo[j] = 0.0
            chi[j] = 0.0


@nb.njit(cache=True, error_model="numpy")
def _line_factor(sub, dia, sup, clo, chi, c, ib, zc, u):
    """LU (Thomas) factorisation of one tridiagonal line, no pivoting: ``c[i] = sup[i-1]
    ib[i-1]`` and the reciprocal pivots ``ib``. A cyclic line (corners ``chi = A[0,n-1]``,
    ``clo = A[n-1,0]``) is factorised as the tridiagonal matrix plus a rank-one term
    (Sherman–Morrison, with ``gam = -dia[0]``): ``zc`` receives the solve of the rank-one
    column (``u`` is scratch). Returns ``(ok, gam, den)``; a vanishing pivot gives ok False."""
    n = dia.size
    cyclic = clo != 0.0 or chi != 0.0
    gam = -dia[0] if cyclic else 0.0
    d0 = dia[0] - gam
    acc = 0.0
    for i in range(n):
        d = d0 if i == 0 else dia[i]
        if cyclic and i == n - 1:
            d -= clo * chi / gam
        if i > 0:
            c[i] = sup[i - 1] * ib[i - 1]
            d -= sub[i] * c[i]
        ib[i] = 1.0 / d
        acc += ib[i]
    if not math.isfinite(acc):
        return False, gam, 0.0
    if not cyclic:
        return True, gam, 1.0
    u[:] = 0.0
    u[0] = gam
    u[n - 1] = clo
    _line_apply(sub, c, ib, u, zc)
    den = 1.0 + zc[0] + chi * zc[n - 1] / gam
    return den != 0.0 and math.isfinite(den), gam, den


@nb.njit(cache=True, error_model="numpy", inline="always")
def _line_apply(sub, c, ib, r, x):
    """Forward and back substitution with the factors of :func:`_line_factor`."""
    n = ib.size
    x[0] = r[0] * ib[0]
    for i in range(1, n):
        x[i] = (r[i] - sub[i] * x[i - 1]) * ib[i]
    for i in range(n - 2, -1, -1):
        x[i] -= c[i + 1] * x[i + 1]


@nb.njit(cache=True, error_model="numpy")
def _axis_factor(sub, dia, sup, clo, chi, c, ib, zc, cyc, u):
    """Factorise every line along axis 0 of the 2D band arrays; ``cyc[0] = gam``,
    ``cyc[1] = den`` per line (cyclic lines only). False if a pivot vanishes."""
    n1 = dia.shape[1]
    ok = True
    for j in range(n1):
        okj, gam, den = _line_factor(sub[:, j], dia[:, j], sup[:, j], clo[j], chi[j], c[:, j],
                                     ib[:, j], zc[:, j], u)
        cyc[0, j] = gam
        cyc[1, j] = den
        ok = ok and okj
    return ok


@nb.njit(cache=True, error_model="numpy")
def _axis_apply(sub, c, ib, zc, cyc, clo, chi, r, x):
    """Solve every line along axis 0 with the factors of :func:`_axis_factor`."""
    n0, n1 = r.shape
    for j in range(n1):
        xj = x[:, j]
        _line_apply(sub[:, j], c[:, j], ib[:, j], r[:, j], xj)
        if clo[j] != 0.0 or chi[j] != 0.0:
            gam = cyc[0, j]
            fac = (xj[0] + chi[j] * xj[n0 - 1] / gam) / cyc[1, j]
            for i in range(n0):
                xj[i] -= fac * zc[i, j]


@nb.njit(cache=True, error_model="numpy", inline="always")
def _single_line_factor(g, cr, lines, h, periodic, a0, s):
    """:func:`_factor_lines` of a 1D grid (one contiguous line), from the workspace's grids
    ``g``, corners ``cr`` and line factors ``lines`` (no tuples of the whole workspace:
    every array a compiled call receives is reference counted)."""
    n0 = g.shape[1]
    _axis_tridiag(g[4], g[5], h, periodic, a0, s, g[11], g[12], g[13], cr[0], cr[1])
    ok, gam, den = _line_factor(g[11].reshape(n0), g[12].reshape(n0), g[13].reshape(n0),
                                cr[0][0], cr[1][0], lines[0][0].reshape(n0), lines[0][1].reshape(n0),
                                lines[0][2].reshape(n0), lines[3][:n0])
    lines[1][0, 0] = gam
    lines[1][1, 0] = den
    return ok


@nb.njit(cache=True, error_model="numpy", inline="always")
def _single_line_apply(g, cr, lines, r, x):
    """:func:`_precondition` of a 1D grid with the factors of :func:`_single_line_factor`."""
    n0 = r.shape[0]
    xf = x.reshape(n0)
    _line_apply(g[11].reshape(n0), lines[0][0].reshape(n0), lines[0][1].reshape(n0), r.reshape(n0), xf)
    clo, chi = cr[0][0], cr[1][0]
    if clo != 0.0 or chi != 0.0:
        zc = lines[0][2].reshape(n0)
        fac = (xf[0] + chi * xf[n0 - 1] / lines[1][0, 0]) / lines[1][1, 0]
        for i in range(n0):
            xf[i] -= fac * zc[i]


@nb.njit(cache=True, error_model="numpy", inline="always")
def _factor_lines(g, cr, lines, geom, a0, s):
    """Factorised tridiagonal lines of the preconditioner ``(a0 I - s J_x)(I - s/a0 J_y)``
    (exact in 1D), from the workspace's grids ``g``, corners ``cr`` and line factors
    ``lines`` and the geometry ``geom``. False if a pivot vanishes."""
    n0, n1 = g[0].shape
    if n1 == 1:
        return _single_line_factor(g, cr, lines, geom[0], geom[2], a0, s)
    _axis_tridiag(g[4], g[5], geom[0], geom[2], a0, s, g[11], g[12], g[13], cr[0], cr[1])
    ok = _axis_factor(g[11], g[12], g[13], cr[0], cr[1], lines[0][0], lines[0][1], lines[0][2], lines[1],
                      lines[3][:n0])
    if n1 > 1:
        _axis_tridiag(g[8].T, g[9].T, geom[1], geom[3], 1.0, s / a0, g[14].T, g[15].T, g[16].T,
                      cr[2], cr[3])
        ok = ok and _axis_factor(g[14].T, g[15].T, g[16].T, cr[2], cr[3], lines[0][3].T, lines[0][4].T,
                                 lines[0][5].T, lines[2], lines[3][:n1])
    return ok


@nb.njit(cache=True, error_model="numpy", inline="always")
def _precondition(r, x, g, cr, lines):
    """``x = P^{-1} r`` with the lines factorised by :func:`_factor_lines` (the workspace's
    grids, corners and line factors, not the whole workspace: module doc, *Workspace*)."""
    if r.shape[1] == 1:
        _single_line_apply(g, cr, lines, r, x)
        return
    tmp = g[20]
    _axis_apply(g[11], lines[0][0], lines[0][1], lines[0][2], lines[1], cr[0], cr[1], r, tmp)
    _axis_apply(g[14].T, lines[0][3].T, lines[0][4].T, lines[0][5].T, lines[2], cr[2], cr[3], tmp.T, x.T)


@nb.njit(cache=True, error_model="numpy")
def _gmres(rhs, x, prob, work, a0, s, with_nonlocal, rtol, max_restarts):
    """Right-preconditioned restarted GMRES for ``(a0 I - s J) x = rhs`` (``x = 0`` start).
    Returns ``(converged, iterations)``."""
    g, blocks = work[0], work[2]
    Vb, Zb, H = blocks[0], blocks[1], blocks[2]
    m = Zb.shape[0]
    n0, n1 = rhs.shape
    M = n0 * n1
    b = rhs.reshape(M)
    xf = x.reshape(M)
    xf[:] = 0.0
    Av = g[19]
    bnorm = math.sqrt(np.sum(b * b))
    if bnorm == 0.0:
        return True, 0
    cs = np.zeros(m)
    sn = np.zeros(m)
    e = np.zeros(m + 1)
    its = 0
    for _ in range(max_restarts):
        # r = b - A x
        jacobian_matvec(x, prob, work, with_nonlocal, Av)
        r = Vb[0]
        Avf = Av.reshape(M)
        for i in range(M):
            r[i] = b[i] - (a0 * xf[i] - s * Avf[i])
        beta = math.sqrt(np.sum(r * r))
        if beta <= rtol * bnorm:
            return True, its
        for i in range(M):
            r[i] /= beta
        e[:] = 0.0
        e[0] = beta
        k_used = 0
        for k in range(m):
            its += 1
            zk = Zb[k]
            _precondition(Vb[k].reshape(n0, n1), zk.reshape(n0, n1), g, work[1], work[3])
            jacobian_matvec(zk.reshape(n0, n1), prob, work, with_nonlocal, Av)
            w = Vb[k + 1]
            for i in range(M):
                w[i] = a0 * zk[i] - s * Avf[i]
            for l in range(k + 1):  # modified Gram-Schmidt
                hl = np.dot(w, Vb[l])
                H[l, k] = hl
                w -= hl * Vb[l]
            hn = math.sqrt(np.sum(w * w))
            H[k + 1, k] = hn
            if hn > 0.0:
                w /= hn
            for l in range(k):  # apply the previous rotations
                tmp = cs[l] * H[l, k] + sn[l] * H[l + 1, k]
                H[l + 1, k] = -sn[l] * H[l, k] + cs[l] * H[l + 1, k]
                H[l, k] = tmp
            den = math.hypot(H[k, k], H[k + 1, k])
            if den == 0.0:
                return False, its
            cs[k] = H[k, k] / den
            sn[k] = H[k + 1, k] / den
            H[k, k] = den
            H[k + 1, k] = 0.0
            e[k + 1] = -sn[k] * e[k]
            e[k] = cs[k] * e[k]
            k_used = k + 1
            if abs(e[k + 1]) <= rtol * bnorm or hn == 0.0:
                break
        # y = H^{-1} e (upper triangular), x += Z y
        y = np.zeros(k_used)
        for i in range(k_used - 1, -1, -1):
            acc = e[i]
            for l in range(i + 1, k_used):
                acc -= H[i, l] * y[l]
            y[i] = acc / H[i, i]
        for l in range(k_used):
            xf += y[l] * Zb[l]
        if abs(e[k_used]) <= rtol * bnorm:
            return True, its
    return False, its


@nb.njit(cache=True, error_model="numpy", inline="always")
def _factors_current(rec, a0, s):
    """Whether the kept factors are those of the linear operator's current face
    coefficients with these ``a0, s`` (the cache record, :func:`make_newton_workspace`)."""
    return rec[3] == rec[0] and rec[1] == a0 and rec[2] == s


@nb.njit(cache=True, error_model="numpy", inline="always")
def _record_factors(rec, a0, s, smw):
    """Enter freshly made factors of ``a0, s`` in the cache record."""
    rec[1], rec[2], rec[3], rec[4] = a0, s, rec[0], 1.0 if smw else 0.0


@nb.njit(cache=True, error_model="numpy")
def _factor(prob, work, a0, s, with_nonlocal):
    """Factorise ``a0 I - s J`` at the state of the last :func:`implicit_rate` call: the
    tridiagonal lines, and for the Woodbury solver the columns :math:`Z = D^{-1}P` and the
    capacitance matrix (kept in ``blocks[7]``). Records ``a0, s`` and whether the Woodbury
    part is included in the cache record. False if a pivot vanishes."""
    inter, lin = prob[0], prob[10]
    g, blocks, rec = work[0], work[2], work[4]
    rec[1] = np.nan
    if not _factor_lines(g, work[1], work[3], prob[6], a0, s):
        return False
    smw = lin == LIN_SMW and with_nonlocal
    if smw:
        # A = D + P Q^T with D the lines, P = -s W (W_k = G^T dg G f_k), Q_k = vol g_k
        kind, vol, K, Fs, Gs, Khat, fft_shape = inter
        n0, n1 = g[0].shape
        r = Fs.shape[0]
        Wb, Zb, S0 = blocks[3], blocks[4], blocks[7]
        geom = prob[6]
        for k in range(r):
            wk = Wb[k].reshape(n0, n1)
            wk[:] = 0.0
            _nonlocal_column(g[6], Fs[k].reshape(n0, n1), geom[0], geom[2], g[3], wk)
            active = False
            for i in range(n0 * n1):
                Wb[k, i] *= -s
                active = active or Wb[k, i] != 0.0
            if active:
                _precondition(wk, Zb[k].reshape(n0, n1), g, work[1], work[3])
            else:  # f_k constant (e.g. the |y|^2 term of a quadratic kernel): no flux, no column
                Zb[k] = 0.0
        for a in range(r):
            for b in range(r):
                S0[a, b] = (a == b) + vol * np.dot(Gs[a], Zb[b])
    _record_factors(rec, a0, s, smw)
    return True


@nb.njit(cache=True, error_model="numpy")
def _apply(rhs, x, prob, work, a0, s, with_nonlocal):
    """Solve with the factors of :func:`_factor`; GMRES (2D, dense/FFT interaction) applies
    the Jacobian of the last :func:`implicit_rate` call, preconditioned by those factors.
    Returns ``(ok, linear_iterations)``."""
    inter, lin = prob[0], prob[10]
    if lin == LIN_THOMAS or (lin == LIN_SMW and not with_nonlocal):
        _precondition(rhs, x, work[0], work[1], work[3])
        return True, 1
    if lin == LIN_SMW:
        blocks = work[2]
        n0, n1 = rhs.shape
        vol, Gs = inter[1], inter[4]
        r = Gs.shape[0]
        Zb, S, qy, S0 = blocks[4], blocks[5], blocks[6], blocks[7]
        _precondition(rhs, x, work[0], work[1], work[3])
        xf = x.reshape(n0 * n1)
        for a in range(r):
            qy[a] = vol * np.dot(Gs[a], xf)
            for b in range(r):
                S[a, b] = S0[a, b]
        if not _small_solve(S, qy):
            return False, 1
        for b in range(r):
            cb = qy[b]
            for i in range(n0 * n1):
                xf[i] -= cb * Zb[b, i]
        return True, 1
    return _gmres(rhs, x, prob, work, a0, s, with_nonlocal, 1e-10, 20)


@nb.njit(cache=True, error_model="numpy")
def linear_solve(rhs, x, prob, work, a0, s, with_nonlocal):
    """Solve ``(a0 I - s J) x = rhs`` at the state of the last :func:`implicit_rate` call
    with the solver of ``prob``. Returns ``(ok, linear_iterations, factorised)``. The factors
    of a linear operator are reused while its coefficients (``xi``), ``a0`` and ``s`` are
    unchanged."""
    rec = work[4]
    factorised = not (prob[11] and _factors_current(rec, a0, s))
    if prob[10] == LIN_THOMAS and rhs.shape[1] == 1:
        # one tridiagonal line: the line kernels directly (through the generic factor and
        # apply calls, which receive the whole workspace, the reference counting costs more
        # than the solve on coarse grids)
        g, cr, lines = work[0], work[1], work[3]
        if factorised:
            rec[1] = np.nan
            if not _single_line_factor(g, cr, lines, prob[6][0], prob[6][2], a0, s):
                return False, 1, True
            _record_factors(rec, a0, s, False)
        _single_line_apply(g, cr, lines, rhs, x)
        return True, 1, factorised
    if factorised and not _factor(prob, work, a0, s, with_nonlocal):
        return False, 1, True
    ok, lits = _apply(rhs, x, prob, work, a0, s, with_nonlocal)
    return ok, lits, factorised


@nb.njit(cache=True, error_model="numpy")
def _small_solve(S, b):
    """Solve ``S y = b`` in place (``b`` receives ``y``) by Gaussian elimination with partial
    pivoting; for the r x r capacitance matrix of the Woodbury formula (r = the separable
    rank, a handful). False if ``S`` is singular."""
    r = b.size
    for k in range(r):
        p = k
        for i in range(k + 1, r):
            if abs(S[i, k]) > abs(S[p, k]):
                p = i
        if S[p, k] == 0.0 or not math.isfinite(S[p, k]):
            return False
        if p != k:
            for j in range(r):
                S[k, j], S[p, j] = S[p, j], S[k, j]
            b[k], b[p] = b[p], b[k]
        for i in range(k + 1, r):
            f = S[i, k] / S[k, k]
            for j in range(k, r):
                S[i, j] -= f * S[k, j]
            b[i] -= f * b[k]
    for k in range(r - 1, -1, -1):
        acc = b[k]
        for j in range(k + 1, r):
            acc -= S[k, j] * b[j]
        b[k] = acc / S[k, k]
    return True


@nb.njit(cache=True, error_model="numpy")
def _nonlocal_column(dg, w, h, periodic, F, out):
    """``out += G^T dg G w`` along axis 0 (one column of the nonlocal Jacobian factor; ``F``
    is face scratch)."""
    n0, n1 = out.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    for j in range(n1):
        for f in range(nf):
            k = f + 1 if f + 1 < n0 else 0
            F[f, j] = dg[f, j] * (w[k, j] - w[f, j]) * inv_h
    _axis_divergence(F, h, periodic, out)


# ---------------------------------------------------------------------------------------
# Newton
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy", inline="always")
def _compensated_sums(a, b):
    """The sums of the entries of ``a`` and of ``b`` (same shape), with Neumaier's
    compensation: an error of about one rounding whatever the number of terms, where a
    running sum's grows with it (on 432 cells the mass of a 171-step ESDIRK3 run drifted by
    1.1e-13 with running sums, 2e-15 with these). One loop, two independent chains."""
    sa = ca = sb = cb = 0.0
    n0, n1 = a.shape
    for i in range(n0):
        for j in range(n1):
            v, w = a[i, j], b[i, j]
            t = sa + v
            ca += (sa - t) + v if abs(sa) >= abs(v) else (v - t) + sa
            sa = t
            t = sb + w
            cb += (sb - t) + w if abs(sb) >= abs(w) else (w - t) + sb
            sb = t
    return sa + ca, sb + cb


@nb.njit(cache=True, error_model="numpy", inline="always")
def _restore_mass(z, rhs, a0):
    r"""Rescale ``z`` in place to :math:`\sum_j a_0 z_j = \sum_j r_j` (when both sums are
    positive; compensated sums) and return the factor applied."""
    total, have = _compensated_sums(rhs, z)
    target = total / a0
    if have > 0.0 and target > 0.0:
        f = target / have
        z *= f
        return f
    return 1.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def newton_solve(z, rhs, a0, s, t, prob, work, with_nonlocal, tol, max_iter, rate, reuse, warm=False):
    r"""Solve :math:`a_0 z - s L_h(z, t) = r` in place from the guess in ``z``.

    Converged when the residual's :math:`L^1` norm :math:`\sum_j|R_j||C|` is at most
    ``tol``; ``rate`` then holds :math:`L_h(z)` at the solution. The result is rescaled to
    :math:`\sum a_0 z = \sum r` (mass to round-off). With ``reuse`` the factors of an
    earlier solve with the same ``a0, s`` are kept while they contract (simplified Newton,
    module doc). With ``warm`` the guess is the solution of the previous converged solve
    (the previous stage of an ESDIRK step): the solve starts from that solution *before*
    its mass rescaling, whose rate and face derivatives the previous solve left in the
    workspace, and skips evaluating them again (when no other evaluation came in between
    and :math:`\xi(t)` is the same; otherwise ``z`` is the guess as usual). Returns
    ``(ok, iterations, linear_iterations, factorisations)``.

    Inlined into its callers, and the stage of a linear operator on one open line with
    fresh face coefficients (every semi-implicit stage) goes to :func:`line_stage` with
    the members of the problem and workspace tuples it uses, not the tuples: a call, or
    an inlined function with a call in one of its branches, that receives the tuples
    counts the references of all their arrays on entry and exit (counted on 96 cells:
    28 increments a stage through the former non-inlined ``newton_solve``, 17 through this
    inlined one, none when the caller goes to :func:`line_stage` itself, as the IMEX
    integrator does). Everything else is :func:`_solve_stage`.
    """
    xi = schedule_value(prob[4], prob[5], t)
    if fresh_open_line(z, xi, prob, work):
        V, log_m, T, h, g, rec, clo, chi, factors, cyclic = line_members(prob, work)
        return line_stage(z, rhs, a0, s, xi, V, log_m, T, h, g, rec, clo, chi, factors, cyclic, rate)
    return _solve_stage(z, rhs, a0, s, t, prob, work, with_nonlocal, tol, max_iter, rate, reuse, warm)


@nb.njit(cache=True, error_model="numpy", inline="always")
def fresh_open_line(z, xi, prob, work):
    r"""Whether the stage of :func:`newton_solve` at :math:`\xi` = ``xi`` is that of a
    linear operator on one open line (1D, not periodic) whose face coefficients at ``xi``
    are not kept: every semi-implicit stage in 1D, solved by :func:`line_stage`."""
    # without branches (`&`, not `and`): the tuple arguments of an inlined function are
    # counted references that pair up only in straight-line code (module doc)
    return prob[11] & (z.shape[1] == 1) & (not prob[6][2]) & (work[4][0] != xi)


@nb.njit(cache=True, error_model="numpy", inline="always")
def line_members(prob, work):
    """The members of the problem and workspace tuples that :func:`line_stage` takes after
    ``xi``, ``(V, log_m, T, h, g, rec, clo, chi, factors, cyclic)``: passed one by one, as
    a tuple they are counted references again (module doc)."""
    cr, lines = work[1], work[3]
    return prob[1], prob[2], prob[3], prob[6][0], work[0], work[4], cr[0], cr[1], lines[0], lines[1]


@nb.njit(cache=True, error_model="numpy")
def _solve_stage(z, rhs, a0, s, t, prob, work, with_nonlocal, tol, max_iter, rate, reuse, warm):
    """:func:`newton_solve` but for a fresh open line: a linear operator's stage by
    :func:`_linear_solve_stage`, otherwise the (simplified) Newton iteration."""
    if prob[11]:
        return _linear_solve_stage(z, rhs, a0, s, schedule_value(prob[4], prob[5], t), prob, work, rate)
    T, vol = prob[3], prob[8]
    g, rec = work[0], work[4]
    R, delta = g[17], g[18]
    n0, n1 = z.shape
    positive = T > 0.0
    xi = schedule_value(prob[4], prob[5], t)
    tag = 2.0 if with_nonlocal else 1.0  # rec[6]: which operator the cached pair is of
    have_rate = warm and rec[6] == tag and rec[7] == xi
    if have_rate:
        z[:] = g[25]
        rate[:] = g[26]
    elif positive:
        for i in range(n0):
            for j in range(n1):
                z[i, j] = max(z[i, j], DENSITY_FLOOR)
    # simplified Newton: keep factors of the same a0, s (the earlier stages of an ESDIRK
    # step) while they contract the residual (module doc)
    frozen = (reuse and prob[10] != LIN_GMRES and rec[1] == a0 and rec[2] == s
              and rec[4] == (1.0 if with_nonlocal and prob[10] == LIN_SMW else 0.0))
    z_kept = g[0]  # the iterate before an update with kept factors
    lin_its = 0
    n_fac = 0
    wasted = 0
    prev = math.inf
    it = 0
    start = 0
    while True:
        if have_rate:
            have_rate = False  # the cached solution's rate and face derivatives
        else:
            implicit_rate(z, t, prob, work, with_nonlocal, rate)
        norm = 0.0
        for i in range(n0):
            for j in range(n1):
                v = a0 * z[i, j] - s * rate[i, j] - rhs[i, j]
                R[i, j] = -v
                norm += abs(v)
        norm *= vol
        if not math.isfinite(norm) and not (frozen and it > 0):
            return False, it + wasted, lin_its, n_fac
        if norm <= tol:
            # keep the solution and its rate (the face derivatives stay in the workspace)
            # for a warm start of the next solve, then rescale to the exact mass
            g[25][:] = z
            g[26][:] = rate
            rec[6] = tag
            rec[7] = xi
            _restore_mass(z, rhs, a0)
            return True, it + wasted, lin_its, n_fac
        if frozen and it > 0:
            theta = norm / prev
            if not theta < 1.0:
                # the kept factors made it worse: undo their last update, then full Newton
                # (with a budget of its own) from the iterate before it
                z[:] = z_kept
                frozen = False
                it -= 1
                wasted += 1
                start = it
                continue
            # slow, or too many iterations left at this rate (the predicted count
            # log(tol/norm)/log(theta)): full Newton from the current iterate
            if theta > NEWTON_CONTRACTION or math.log(tol / norm) > NEWTON_KEPT_ITERATIONS * math.log(theta):
                frozen = False
                start = it
        if it - start == max_iter:
            break
        prev = norm
        if not frozen:
            n_fac += 1
            if not _factor(prob, work, a0, s, with_nonlocal):
                return False, it + 1 + wasted, lin_its, n_fac
        ok, li = _apply(R, delta, prob, work, a0, s, with_nonlocal)
        lin_its += li
        if frozen and positive and ok:
            # an update that would remove half of a cell's density or more (in a cell whose
            # mass is above its share of the tolerance) is not a small correction: the kept
            # factors are not trusted with it
            floor = tol / (vol * n0 * n1)
            for i in range(n0):
                for j in range(n1):
                    if delta[i, j] < -0.5 * z[i, j] and z[i, j] > floor:
                        frozen = False
            if not frozen:
                start = it
                n_fac += 1
                if not _factor(prob, work, a0, s, with_nonlocal):
                    return False, it + 1 + wasted, lin_its, n_fac
                ok, li = _apply(R, delta, prob, work, a0, s, with_nonlocal)
                lin_its += li
        if not ok:
            return False, it + 1 + wasted, lin_its, n_fac
        if frozen:
            z_kept[:] = z
        for i in range(n0):
            for j in range(n1):
                d = delta[i, j]
                if positive:
                    zi = z[i, j]
                    if d >= -0.5 * zi:
                        z[i, j] = max(zi + d, DENSITY_FLOOR)
                    else:
                        z[i, j] = max(zi * math.exp(max(d / zi, -10.0)), DENSITY_FLOOR)
                else:
                    z[i, j] += d
        it += 1
    return False, it + wasted, lin_its, n_fac


@nb.njit(cache=True, error_model="numpy")
def _sg_line_stage(z, rhs, a0, s, psi, log_m, xi, T, h, g, clo, chi, factors, cyclic, rate):
    r"""The linear ``sg`` stage :math:`(a_0I - sJ)z = r` on one open line (1D, not
    periodic) in two sweeps after the face coefficients (into ``g[4], g[5]``, by the
    vectorised loop :func:`_sg_faces` of :func:`_axis_faces` with ``rate=False``). The first
    sweep computes the matrix entries (:func:`_axis_tridiag`), the LU factors
    (:func:`_line_factor`; kept in ``g[11]`` and the workspace's line factors, whose
    members ``clo, chi`` (corners), ``factors`` and ``cyclic`` this takes, for a later
    :func:`_single_line_apply`) and the forward substitution; the second the back
    substitution and the rate :math:`Jz` (:func:`_axis_matvec`) into ``rate``. The
    operations and their order are those of the separate kernels, so the result is the
    same to the bit (tested); what goes is writing the bands and factors in one pass and
    reading them back in the next. On the 96-cell Curie–Weiss flagship a
    semi-implicit stage took 6.7 us and took 4.5 us (compiled loop of 20000 stages), and
    ARK4 at the auto tolerance 1.28 ms -> 0.95-1.01 ms (alternating processes); with the
    coefficients from the vectorised loop, ~3.3 us and 0.84-0.87 ms. Returns
    False if a pivot vanishes or is not finite (``z`` and ``rate`` are then garbage)."""
    n = z.shape[0]
    aL, aR, sub = g[4], g[5], g[11]
    c, ib = factors[0], factors[1]
    inv_h = 1.0 / h
    clo[0] = 0.0  # no corners: an open line
    chi[0] = 0.0
    cyclic[0, 0] = 0.0
    cyclic[1, 0] = 1.0
    # the face coefficients first, in the vectorised loop of _axis_faces
    _sg_faces(psi, log_m, z, False, T, xi, h, aL, aR, aL, False)
    cl = cl_prev = cr_prev = ib_prev = 0.0
    y_prev = 0.0
    acc = 0.0
    for i in range(n):
        d = a0
        if i > 0:
            d -= cr_prev
        if i + 1 < n:  # face i, between cells i and i + 1
            cl = s * aL[i, 0] * inv_h
            d += cl
        if i > 0:
            sb = -cl_prev
            ci = cr_prev * ib_prev
            sub[i, 0] = sb
            c[i, 0] = ci
            d -= sb * ci
            ibi = 1.0 / d
            y = (rhs[i, 0] - sb * y_prev) * ibi
        else:
            ibi = 1.0 / d
            y = rhs[0, 0] * ibi
        ib[i, 0] = ibi
        acc += ibi
        z[i, 0] = y
        y_prev, ib_prev = y, ibi
        if i + 1 < n:
            cl_prev = cl
            cr_prev = s * aR[i, 0] * inv_h
    if not math.isfinite(acc):
        return False
    # back substitution, and the rate J z face by face as it completes (the products and
    # sums of :func:`_axis_matvec`: rate_i = dF_{i-1} - dF_i either way round)
    zn = z[n - 1, 0]
    rate[n - 1, 0] = 0.0
    for i in range(n - 2, -1, -1):
        zi = z[i, 0] - c[i + 1, 0] * zn
        z[i, 0] = zi
        dF = aL[i, 0] * zi + aR[i, 0] * zn
        dF *= inv_h
        rate[i + 1, 0] += dF
        rate[i, 0] = -dF
        zn = zi
    return True


@nb.njit(cache=True, error_model="numpy", inline="always")
def line_stage(z, rhs, a0, s, xi, V, log_m, T, h, g, rec, clo, chi, factors, cyclic, rate):
    """The stage of a linear operator on one open line with fresh face coefficients:
    ``z = A^{-1} r`` directly (the guess in ``z`` is not used) and ``rate = J z``
    (:math:`= L_h z`), coefficients, factors, solution and rate in two sweeps
    (:func:`_sg_line_stage`), both rescaled to the exact mass."""
    frozen = rec[5] == 1.0  # the potential held by freeze_potential, else V
    psi = g[2] if frozen else V
    rec[0] = np.nan if frozen else xi
    rec[6] = 0.0  # the face data are not those of a cached nonlinear solve
    rec[1] = np.nan
    if not _sg_line_stage(z, rhs, a0, s, psi, log_m, xi, T, h, g, clo, chi, factors, cyclic, rate):
        return False, 1, 1, 1
    _record_factors(rec, a0, s, False)
    return _rescaled_stage(z, rhs, a0, rate, 1, 1)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _linear_solve_stage(z, rhs, a0, s, xi, prob, work, rate):
    """The stage of a linear operator by :func:`linear_solve` (kept factors, a periodic
    line, 2D): as :func:`line_stage`, the face coefficients from :func:`_faces`."""
    g, rec, geom = work[0], work[4], prob[6]
    frozen = rec[5] == 1.0
    psi = g[2] if frozen else prob[1]
    if rec[0] != xi:  # the face coefficients of the linear operator at this xi are not kept
        rec[0] = np.nan if frozen else xi
        rec[6] = 0.0
        _faces(z, psi, prob[2], g, geom, xi, prob[3], prob[7], rate, False)
    ok, lits, fac = linear_solve(rhs, z, prob, work, a0, s, False)
    n_fac = 1 if fac else 0
    if not ok:
        return False, 1, lits, n_fac
    _faces_matvec(g, geom, z, g[21][:0, :0], rate)
    return _rescaled_stage(z, rhs, a0, rate, lits, n_fac)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _rescaled_stage(z, rhs, a0, rate, lits, n_fac):
    """The end of a linear stage: ``z`` and its rate rescaled to the exact mass, and the
    result ``(ok, 1, lits, n_fac)`` (not ok if ``z`` is not finite)."""
    rate *= _restore_mass(z, rhs, a0)  # the rate of the rescaled z (linear)
    for v in z.flat:
        if not math.isfinite(v):
            return False, 1, lits, n_fac
    return True, 1, lits, n_fac


@nb.njit(cache=True, error_model="numpy")
def free_energy(rho, prob, psi):
    r"""Discrete free energy :math:`\sum_j \rho_j\big(V_j + \tfrac12(\mathcal U\rho)_j
    + \beta^{-1}(\log\rho_j - \log m_j)\big)|C|` (``psi`` is scratch)."""
    inter, V, log_m, T, vol = prob[0], prob[1], prob[2], prob[3], prob[8]
    if inter[0] != KIND_NONE:
        compute_psi(inter, rho, V, psi)
    else:
        psi[:] = V
    return free_energy_psi(rho, V, psi, log_m, T, vol)


@nb.njit(cache=True, error_model="numpy")
def free_energy_psi(rho, V, psi, log_m, T, vol):
    r""":func:`free_energy` given :math:`\Psi = V + \mathcal U\rho` in ``psi``."""
    n0, n1 = rho.shape
    e = 0.0
    for i in range(n0):
        for j in range(n1):
            r = rho[i, j]
            v = 0.5 * (V[i, j] + psi[i, j])
            if T > 0.0 and r > 0.0:
                v += T * (math.log(r) - log_m[i, j])
            e += r * v
    return e * vol
