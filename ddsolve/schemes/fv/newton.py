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
  Herda, IMA J. Numer. Anal. 2020).

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
from ddsolve.schemes.fv.kernels import compute_psi

__all__ = ["LIN_THOMAS", "LIN_SMW", "LIN_GMRES", "make_problem", "make_newton_workspace",
           "implicit_rate", "newton_solve", "free_energy", "jacobian_matvec", "linear_solve"]

LIN_THOMAS, LIN_SMW, LIN_GMRES = 0, 1, 2
GMRES_RESTART = 30
_NEWTON_OK, _NEWTON_FAIL = 0, 1


def make_problem(eq, flux: str, nonlocal_implicit: bool = True) -> tuple:
    """The tuple the compiled kernels take: ``(inter, V2, log_m2, T, code, params, geom,
    logmean, vol, nonlocal, lin)`` for a :class:`~ddsolve.schemes.fv.pde.DistributionalDynamicsPDE`.

    ``nonlocal`` says whether the interaction belongs to the implicit operator (False: the
    IMEX splitting, where it is treated explicitly); ``lin`` is the linear solver the
    structure allows (:data:`LIN_THOMAS`, :data:`LIN_SMW` or :data:`LIN_GMRES`)."""
    if flux not in ("upwind", "logmean"):
        raise ValueError(f"implicit flux must be 'upwind' or 'logmean', got {flux!r}")
    if flux == "logmean" and eq.temperature == 0:
        raise ValueError("the 'logmean' flux needs diffusion (finite beta); use 'upwind'")
    kind = eq.inter[0]
    has_nl = nonlocal_implicit and kind != KIND_NONE
    if not eq.two_d and not has_nl:
        lin = LIN_THOMAS
    elif not eq.two_d and kind == KIND_SEPARABLE:
        lin = LIN_SMW
    else:
        lin = LIN_GMRES
    return (eq.inter, eq.V2, eq.log_m2, float(eq.temperature), int(eq.sched[0]),
            np.asarray(eq.sched[1], dtype=float), eq.geom, flux == "logmean",
            float(eq.grid_model.coords.cell_volume), bool(has_nl), lin)


def make_newton_workspace(eq) -> tuple:
    """Arrays reused by the kernels for the grid of ``eq``: 25 grid arrays, 4 corner
    vectors, the GMRES and Woodbury blocks (one row per separable term)."""
    n0, n1 = eq.shape2d
    rank = eq.inter[3].shape[0] if eq.inter[0] == KIND_SEPARABLE else 0
    M = n0 * n1
    grids = tuple(np.zeros((n0, n1)) for _ in range(25))
    corners = (np.zeros(n1), np.zeros(n1), np.zeros(n0), np.zeros(n0))
    m = GMRES_RESTART
    r = max(rank, 1)
    blocks = (np.zeros((m + 1, M)), np.zeros((m, M)), np.zeros((m + 1, m)),
              np.zeros((r, M)), np.zeros((r, M)))
    return grids, corners, blocks


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


@nb.njit(cache=True, error_model="numpy")
def _axis_faces(rho, logr, invr, q, h, periodic, xi, T, logmean, F, aL, aR, dg):
    """Fluxes and derivatives of the faces along axis 0: face ``f`` joins cells ``f`` and
    ``f + 1`` (``n0 - 1`` joins ``n0 - 1`` and 0 on a periodic axis). ``logr`` and
    ``invr`` hold log and reciprocal of the floored densities."""
    n0, n1 = rho.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    for j in range(n1):
        for f in range(nf):
            i = f
            k = f + 1 if f + 1 < n0 else 0
            g = (q[k, j] - q[i, j]) * inv_h
            rl, rr = rho[i, j], rho[k, j]
            if logmean:
                a = max(rl, DENSITY_FLOOR)
                b = max(rr, DENSITY_FLOOR)
                lam, la, lb = _log_mean(a, b, logr[i, j], logr[k, j], invr[i, j], invr[k, j])
                F[f, j] = -xi * (lam * g + T * (rr - rl) * inv_h)
                aL[f, j] = -xi * (la * g - T * inv_h)
                aR[f, j] = -xi * (lb * g + T * inv_h)
                dg[f, j] = -xi * lam
            else:
                u = -xi * g
                if u > 0.0:
                    F[f, j] = u * rl
                    aL[f, j] = u
                    aR[f, j] = 0.0
                    d = -xi * rl
                else:
                    F[f, j] = u * rr
                    aL[f, j] = 0.0
                    aR[f, j] = u
                    d = -xi * rr
                dg[f, j] = d
                if T > 0.0:
                    c = d * inv_h * T
                    aL[f, j] -= c * invr[i, j]
                    aR[f, j] += c * invr[k, j]


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
def implicit_rate(rho, t, prob, work, with_nonlocal, out):
    r"""``out = L_h(rho, t)``, filling the face derivatives in ``work`` for the Jacobian.

    ``with_nonlocal=False`` drops the interaction from :math:`\Psi` (the implicit part of
    the IMEX splitting)."""
    inter, V, log_m, T, code, params, geom, logmean, vol, has_nl, lin = prob
    g = work[0]
    q, logr, psi = g[0], g[1], g[2]
    Fx, aLx, aRx, dgx, Fy, aLy, aRy, dgy = g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10]
    hx, hy, px, py = geom
    n0, n1 = rho.shape
    xi = schedule_value(code, params, t)
    if with_nonlocal and inter[0] != KIND_NONE:
        compute_psi(inter, rho, V, psi)
    else:
        psi[:] = V
    invr = g[24]
    for i in range(n0):
        for j in range(n1):
            r = max(rho[i, j], DENSITY_FLOOR)
            lr = math.log(r)
            logr[i, j] = lr
            invr[i, j] = 1.0 / r
            if T > 0.0:
                if logmean:
                    q[i, j] = psi[i, j] - T * log_m[i, j]
                else:
                    q[i, j] = psi[i, j] + T * (lr - log_m[i, j])
            else:
                q[i, j] = psi[i, j]
            out[i, j] = 0.0
    _axis_faces(rho, logr, invr, q, hx, px, xi, T, logmean, Fx, aLx, aRx, dgx)
    _axis_divergence(Fx, hx, px, out)
    if n1 > 1:
        _axis_faces(rho.T, logr.T, invr.T, q.T, hy, py, xi, T, logmean, Fy.T, aLy.T, aRy.T, dgy.T)
        _axis_divergence(Fy.T, hy, py, out.T)


@nb.njit(cache=True, error_model="numpy")
def jacobian_matvec(v, prob, work, with_nonlocal, out):
    """``out = J v`` at the state of the last :func:`implicit_rate` call."""
    inter, V, log_m, T, code, params, geom, logmean, vol, has_nl, lin = prob
    g = work[0]
    aLx, aRx, dgx, aLy, aRy, dgy = g[4], g[5], g[6], g[8], g[9], g[10]
    w = g[21]
    hx, hy, px, py = geom
    n0, n1 = v.shape
    out[:] = 0.0
    wv = w[:0, :0]
    if with_nonlocal and inter[0] != KIND_NONE:
        compute_psi(inter, v, g[23], w)  # g[23] stays zero: U v without V
        wv = w
    _axis_matvec(aLx, aRx, dgx, wv, hx, px, v, out)
    if n1 > 1:
        _axis_matvec(aLy.T, aRy.T, dgy.T, wv.T, hy, py, v.T, out.T)


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
def _thomas(sub, dia, sup, r, x, c):
    """Solve a tridiagonal system (no pivoting); ``c`` is scratch. False if a pivot vanishes."""
    n = dia.size
    ib = 1.0 / dia[0]
    acc = ib
    x[0] = r[0] * ib
    for i in range(1, n):
        ci = sup[i - 1] * ib
        c[i] = ci
        ib = 1.0 / (dia[i] - sub[i] * ci)
        acc += ib
        x[i] = (r[i] - sub[i] * x[i - 1]) * ib
    for i in range(n - 2, -1, -1):
        x[i] -= c[i + 1] * x[i + 1]
    return math.isfinite(acc)  # a vanishing pivot shows up as inf/nan


@nb.njit(cache=True, error_model="numpy")
def _line_solve(sub, dia, sup, clo, chi, r, x, c, z, u):
    """Solve one (cyclic) tridiagonal line: corners ``chi = A[0,n-1]``, ``clo = A[n-1,0]``
    by Sherman–Morrison on the Thomas algorithm. ``c, z, u`` are scratch."""
    n = dia.size
    if clo == 0.0 and chi == 0.0:
        return _thomas(sub, dia, sup, r, x, c)
    gam = -dia[0]
    d0, d1 = dia[0], dia[n - 1]
    dia[0] = d0 - gam
    dia[n - 1] = d1 - clo * chi / gam
    ok = _thomas(sub, dia, sup, r, x, c)
    u[:] = 0.0
    u[0] = gam
    u[n - 1] = clo
    ok = ok and _thomas(sub, dia, sup, u, z, c)
    dia[0], dia[n - 1] = d0, d1
    if not ok:
        return False
    den = 1.0 + z[0] + chi * z[n - 1] / gam
    if den == 0.0:
        return False
    fac = (x[0] + chi * x[n - 1] / gam) / den
    for i in range(n):
        x[i] -= fac * z[i]
    return True


@nb.njit(cache=True, error_model="numpy")
def _axis_solve(sub, dia, sup, clo, chi, r, x, scratch):
    """Solve every line along axis 0 of 2D arrays (``scratch`` has shape ``(3, n0)``)."""
    n0, n1 = r.shape
    ok = True
    for j in range(n1):
        ok = ok and _line_solve(sub[:, j], dia[:, j], sup[:, j], clo[j], chi[j],
                                r[:, j], x[:, j], scratch[0], scratch[1], scratch[2])
    return ok


@nb.njit(cache=True, error_model="numpy")
def _factor_lines(prob, work, a0, s):
    """Tridiagonal lines of the preconditioner ``(a0 I - s J_x)(I - s/a0 J_y)``."""
    geom = prob[6]
    g, cr = work[0], work[1]
    n1 = g[0].shape[1]
    _axis_tridiag(g[4], g[5], geom[0], geom[2], a0, s, g[11], g[12], g[13], cr[0], cr[1])
    if n1 > 1:
        _axis_tridiag(g[8].T, g[9].T, geom[1], geom[3], 1.0, s / a0, g[14].T, g[15].T, g[16].T,
                      cr[2], cr[3])


@nb.njit(cache=True, error_model="numpy")
def _precondition(r, x, work, scratch_x, scratch_y):
    """``x = P^{-1} r`` with the alternating-line factorisation (exact in 1D)."""
    g, cr = work[0], work[1]
    n1 = r.shape[1]
    if n1 == 1:
        return _axis_solve(g[11], g[12], g[13], cr[0], cr[1], r, x, scratch_x)
    tmp = g[20]
    ok = _axis_solve(g[11], g[12], g[13], cr[0], cr[1], r, tmp, scratch_x)
    return ok and _axis_solve(g[14].T, g[15].T, g[16].T, cr[2], cr[3], tmp.T, x.T, scratch_y)


@nb.njit(cache=True, error_model="numpy")
def _gmres(rhs, x, prob, work, a0, s, with_nonlocal, rtol, max_restarts, scratch_x, scratch_y):
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
            if not _precondition(Vb[k].reshape(n0, n1), zk.reshape(n0, n1), work, scratch_x, scratch_y):
                return False, its
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


@nb.njit(cache=True, error_model="numpy")
def linear_solve(rhs, x, prob, work, a0, s, with_nonlocal):
    """Solve ``(a0 I - s J) x = rhs`` at the state of the last :func:`implicit_rate` call
    with the solver of ``prob``. Returns ``(ok, linear_iterations)``."""
    inter, lin = prob[0], prob[10]
    g, blocks = work[0], work[2]
    n0, n1 = rhs.shape
    scratch_x = np.empty((3, n0))
    scratch_y = np.empty((3, n1))
    _factor_lines(prob, work, a0, s)
    if lin == LIN_THOMAS or (lin == LIN_SMW and not with_nonlocal):
        return _precondition(rhs, x, work, scratch_x, scratch_y), 1
    if lin == LIN_SMW:
        # A = D + P Q^T with D the lines, P = -s W (W_k = G^T dg G f_k), Q_k = vol g_k
        kind, vol, K, Fs, Gs, Khat, fft_shape = inter
        r = Fs.shape[0]
        Wb, Zb = blocks[3], blocks[4]
        geom = prob[6]
        for k in range(r):
            wk = Wb[k].reshape(n0, n1)
            wk[:] = 0.0
            _nonlocal_column(g[6], Fs[k].reshape(n0, n1), geom[0], geom[2], wk)
            wk *= -s
            if not _precondition(wk, Zb[k].reshape(n0, n1), work, scratch_x, scratch_y):
                return False, 1
        if not _precondition(rhs, x, work, scratch_x, scratch_y):
            return False, 1
        S = np.eye(r)
        qy = np.empty(r)
        xf = x.reshape(n0 * n1)
        for a in range(r):
            qy[a] = vol * np.dot(Gs[a], xf)
            for b in range(r):
                S[a, b] += vol * np.dot(Gs[a], Zb[b])
        coef = np.linalg.solve(S, qy)
        for b in range(r):
            xf -= coef[b] * Zb[b]
        return True, 1
    return _gmres(rhs, x, prob, work, a0, s, with_nonlocal, 1e-10, 20, scratch_x, scratch_y)


@nb.njit(cache=True, error_model="numpy")
def _nonlocal_column(dg, w, h, periodic, out):
    """``out += G^T dg G w`` along axis 0 (one column of the nonlocal Jacobian factor)."""
    n0, n1 = out.shape
    inv_h = 1.0 / h
    nf = n0 if periodic else n0 - 1
    F = np.empty((nf, n1))
    for j in range(n1):
        for f in range(nf):
            k = f + 1 if f + 1 < n0 else 0
            F[f, j] = dg[f, j] * (w[k, j] - w[f, j]) * inv_h
    _axis_divergence(F, h, periodic, out)


# ---------------------------------------------------------------------------------------
# Newton
# ---------------------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy")
def newton_solve(z, rhs, a0, s, t, prob, work, with_nonlocal, tol, max_iter, rate):
    r"""Solve :math:`a_0 z - s L_h(z, t) = r` in place from the guess in ``z``.

    Converged when the residual's :math:`L^1` norm :math:`\sum_j|R_j||C|` is at most
    ``tol``; ``rate`` then holds :math:`L_h(z)` at the solution. The result is rescaled to
    :math:`\sum a_0 z = \sum r` (mass to round-off). Returns ``(ok, iterations,
    linear_iterations)``.
    """
    T, vol = prob[3], prob[8]
    g = work[0]
    R, delta = g[17], g[18]
    n0, n1 = z.shape
    positive = T > 0.0
    if positive:
        for i in range(n0):
            for j in range(n1):
                z[i, j] = max(z[i, j], DENSITY_FLOOR)
    lin_its = 0
    for it in range(max_iter + 1):
        implicit_rate(z, t, prob, work, with_nonlocal, rate)
        norm = 0.0
        for i in range(n0):
            for j in range(n1):
                v = a0 * z[i, j] - s * rate[i, j] - rhs[i, j]
                R[i, j] = -v
                norm += abs(v)
        norm *= vol
        if not math.isfinite(norm):
            return False, it, lin_its
        if norm <= tol:
            target = np.sum(rhs) / a0
            have = np.sum(z)
            if have > 0.0 and target > 0.0:
                z *= target / have
            return True, it, lin_its
        if it == max_iter:
            break
        ok, li = linear_solve(R, delta, prob, work, a0, s, with_nonlocal)
        lin_its += li
        if not ok:
            return False, it + 1, lin_its
        for i in range(n0):
            for j in range(n1):
                d = delta[i, j]
                if positive:
                    ratio = d / z[i, j]
                    if ratio >= -0.5:
                        z[i, j] = max(z[i, j] + d, DENSITY_FLOOR)
                    else:
                        z[i, j] = max(z[i, j] * math.exp(max(ratio, -10.0)), DENSITY_FLOOR)
                else:
                    z[i, j] += d
    return False, max_iter, lin_its


@nb.njit(cache=True, error_model="numpy")
def free_energy(rho, prob, psi):
    r"""Discrete free energy :math:`\sum_j \rho_j\big(V_j + \tfrac12(\mathcal U\rho)_j
    + \beta^{-1}(\log\rho_j - \log m_j)\big)|C|` (``psi`` is scratch)."""
    inter, V, log_m, T, vol = prob[0], prob[1], prob[2], prob[3], prob[8]
    if inter[0] != KIND_NONE:
        compute_psi(inter, rho, V, psi)
    else:
        psi[:] = V
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
