r"""Compiled kernels of the finite-volume scheme for distributional dynamics.

Semi-discrete scheme of Carrillo, Chertock & Huang (CiCP 17, 2015, eqs. (2.3)–(2.8)),
dimension by dimension on a Cartesian grid. With cell averages :math:`\rho_j` and the
cell potential

.. math:: \phi_j = \xi(t)\big(\Psi_j + \beta^{-1}\log(\rho_j/m_j)\big),

the face velocity is :math:`u_{j+1/2} = -(\phi_{j+1}-\phi_j)/h` and the upwind flux

.. math:: F_{j+1/2} = u^+_{j+1/2}\,\rho^E_j + u^-_{j+1/2}\,\rho^W_{j+1},

with :math:`\rho^{E,W}_j = \rho_j \pm \tfrac h2 s_j` and the generalised minmod slope
:math:`s_j = \mathrm{minmod}(\theta\Delta_+, \tfrac12(\Delta_++\Delta_-), \theta\Delta_-)/h`,
:math:`\theta\in[1,2]` (``order=1`` uses :math:`s_j=0`). Boundary faces of no-flux axes
carry :math:`F=0` exactly, so mass is conserved to round-off. Because
:math:`\rho^{E,W}_j\ge0` and :math:`\rho^E_j+\rho^W_j = 2\rho_j`, a forward-Euler step is
positivity preserving when

.. math:: \Delta t \sum_a \frac{2\max|u_a|}{h_a} \le 1

(CCH, Thm 3.1, in the form for several axes). The flux has the sign of :math:`u`,
which gives :math:`\frac{d}{dt}F_h = -\sum u_{j+1/2}F_{j+1/2}\,h \le 0`.

In near-vacuum cells (where the logarithm makes :math:`|u|` meaningless) the speed bound
ignores faces whose upwind density is below ``1e-12`` of the maximum, and a conservative
flux limiter scales the outgoing fluxes of any cell that would otherwise go negative;
away from vacuum the limiter is inactive and the scheme is exactly CCH.

The kernels work on 2D arrays; a 1D density is viewed with shape ``(n, 1)``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ddsolve.grid.grid_model import DENSITY_FLOOR
from ddsolve.model.schedule import schedule_value

__all__ = [
    "SSP_TABLES",
    "potential_field",
    "axis_fluxes",
    "euler_update",
    "fv_rate",
    "compute_psi",
    "rk_step",
    "advance",
    "STATUS_MESSAGES",
    "as_2d",
    "make_workspace",
]

SPEED_FLOOR_REL = 1e-12

# Shu–Osher form, one row per stage: u_k = a u_0 + b (u_{k-1} + d dt L(u_{k-1})), with L
# evaluated at time t + c dt. Every stage is a forward-Euler step of size d*dt, so the
# step may be 1/max(d) (the SSP coefficient) times the forward-Euler bound.
#   1: forward Euler;  2: SSPRK(3,2), SSP coefficient 2;  3: SSPRK(4,3) (Spiteri & Ruuth,
#   SIAM J. Numer. Anal. 40, 2002), SSP coefficient 2 -- per right-hand-side evaluation
#   these take 1.3x and 1.5x larger steps than the classical SSPRK(2,2) and SSPRK(3,3).
SSP_TABLES = {
    1: np.array([[0.0, 1.0, 0.0, 1.0]]),
    2: np.array([[0.0, 1.0, 0.0, 0.5], [0.0, 1.0, 0.5, 0.5], [1.0 / 3.0, 2.0 / 3.0, 1.0, 0.5]]),
    3: np.array([[0.0, 1.0, 0.0, 0.5], [0.0, 1.0, 0.5, 0.5], [2.0 / 3.0, 1.0 / 3.0, 1.0, 0.5],
                 [0.0, 1.0, 0.5, 0.5]]),
}
"""Shu–Osher tables ``(a, b, c, d)`` of the SSP Runge–Kutta methods, keyed by order."""

STATUS_OK, STATUS_NAN, STATUS_DT, STATUS_NEGATIVE = 0, 1, 2, 3
STATUS_MESSAGES = {
    STATUS_NAN: "non-finite density (NaN or inf)",
    STATUS_DT: "time step collapsed below dt_min",
    STATUS_NEGATIVE: "negative density",
}

# interaction kinds understood by compiled code (each operator packs itself, see
# ddsolve.grid.interaction.InteractionOperator.packed)
from ddsolve.grid.interaction import KIND_DENSE, KIND_FFT, KIND_SEPARABLE  # noqa: E402


@nb.njit(cache=True)
def potential_field(rho, psi, log_m, temperature, xi, out):
    """``out = xi * (psi + T * (log(max(rho, floor)) - log_m))``."""
    n0, n1 = rho.shape
    for i in range(n0):
        for j in range(n1):
            v = psi[i, j]
            if temperature > 0.0:
                v += temperature * (math.log(max(rho[i, j], DENSITY_FLOOR)) - log_m[i, j])
            out[i, j] = xi * v


@nb.njit(cache=True)
def _minmod(a, b, c):
    if a > 0.0 and b > 0.0 and c > 0.0:
        return min(a, min(b, c))
    if a < 0.0 and b < 0.0 and c < 0.0:
        return max(a, max(b, c))
    return 0.0


@nb.njit(cache=True)
def axis_fluxes(rho, phi, h, periodic, theta, order, speed_floor, F):
    """Face fluxes along axis 0 of 2D arrays; ``F`` has shape ``(n0 + 1, n1)``.

    Face ``k`` lies between cells ``k - 1`` and ``k``; faces 0 and ``n0`` are the
    boundary (zero flux unless periodic, then both hold the wrap-around flux).
    Returns the largest ``|u|`` over faces whose upwind density exceeds ``speed_floor``.
    """
    n0, n1 = rho.shape
    vmax = 0.0
    east = np.empty(n0)
    west = np.empty(n0)
    for j in range(n1):
        for i in range(n0):
            r = rho[i, j]
            s = 0.0
            if order > 1:
                if i > 0:
                    left = rho[i - 1, j]
                elif periodic:
                    left = rho[n0 - 1, j]
                else:
                    left = r
                if i < n0 - 1:
                    right = rho[i + 1, j]
                elif periodic:
                    right = rho[0, j]
                else:
                    right = r
                dp = right - r
                dm = r - left
                s = _minmod(theta * dp, 0.5 * (dp + dm), theta * dm)
            east[i] = r + 0.5 * s
            west[i] = r - 0.5 * s
        nfaces = n0 if periodic else n0 - 1
        for f in range(nfaces):
            i = f
            k = f + 1 if f + 1 < n0 else 0
            u = -(phi[k, j] - phi[i, j]) / h
            if u > 0.0:
                up = east[i]
                flux = u * up
            else:
                up = west[k]
                flux = u * up
            if up > speed_floor and abs(u) > vmax:
                vmax = abs(u)
            F[f + 1, j] = flux
        if periodic:
            F[0, j] = F[n0, j]
        else:
            F[0, j] = 0.0
            F[n0, j] = 0.0
    return vmax


@nb.njit(cache=True)
def euler_update(rho_s, rho0, a, b, dt, Fx, hx, Fy, hy, scale, out):
    """``out = a*rho0 + b*(rho_s - dt*div F)``, positivity-limited where needed.

    Values in :math:`(-10^{-300}, 0)` (rounding at underflow level) are set to zero. The
    plain update is computed first; only if some cell would go negative are the
    outgoing fluxes of every cell whose outflow exceeds its content scaled down (each face
    by the factor of its donor cell, so the update stays conservative) and the update
    redone. ``scale`` is workspace of the shape of ``rho_s``; ``Fy``/``hy`` are ignored
    when ``Fy`` has zero size (1D). Returns the number of limited cells.
    """
    n0, n1 = rho_s.shape
    two_d = Fy.size > 0
    negative = False
    for i in range(n0):
        for j in range(n1):
            div = (Fx[i + 1, j] - Fx[i, j]) / hx
            if two_d:
                div += (Fy[i, j + 1] - Fy[i, j]) / hy
            v = rho_s[i, j] - dt * div
            if v < 0.0:
                if v > -DENSITY_FLOOR:
                    v = 0.0  # underflow-level rounding, not a loss of positivity
                else:
                    negative = True
            out[i, j] = a * rho0[i, j] + b * v
    if not negative:
        return 0
    limited = 0
    for i in range(n0):
        for j in range(n1):
            outflow = max(Fx[i + 1, j], 0.0) / hx + max(-Fx[i, j], 0.0) / hx
            if two_d:
                outflow += max(Fy[i, j + 1], 0.0) / hy + max(-Fy[i, j], 0.0) / hy
            outflow *= dt
            if outflow > rho_s[i, j] and outflow > 0.0:
                # keep a 1e-12 margin so that rounding cannot push the cell below zero
                scale[i, j] = max(rho_s[i, j], 0.0) * (1.0 - 1e-12) / outflow
                limited += 1
            else:
                scale[i, j] = 1.0
    for i in range(n0):
        for j in range(n1):
            fr = Fx[i + 1, j]
            fr *= scale[i, j] if fr > 0.0 else scale[(i + 1) % n0, j]
            fl = Fx[i, j]
            fl *= scale[(i - 1) % n0, j] if fl > 0.0 else scale[i, j]
            div = (fr - fl) / hx
            if two_d:
                gr = Fy[i, j + 1]
                gr *= scale[i, j] if gr > 0.0 else scale[i, (j + 1) % n1]
                gl = Fy[i, j]
                gl *= scale[i, (j - 1) % n1] if gl > 0.0 else scale[i, j]
                div += (gr - gl) / hy
            v = rho_s[i, j] - dt * div
            if -DENSITY_FLOOR < v < 0.0:
                v = 0.0
            out[i, j] = a * rho0[i, j] + b * v
    return limited


@nb.njit(cache=True, inline="always")
def compute_psi(inter, rho, V, out):
    """``out = V + U rho`` for every interaction kind, compiled.

    ``inter = (kind, vol, K, F, G, Khat, fft_shape)``: dense matrix ``K``, separable
    factors ``F, G``, or the FFT of the convolution vector ``Khat`` on ``fft_shape``
    (numpy.fft inside numba via rocket-fft); unused entries are dummies.

    Inlined into its callers (the separable and local cases; the dense and FFT ones are a
    call, :func:`_convolution_psi`): every array a compiled call receives, also inside a
    tuple, is a reference the runtime counts on entry and exit with an atomic increment
    and decrement (``ddsolve.schemes.fv.newton``, module doc); on the 96-cell Curie–Weiss
    flagship, rank 3, 18 -> 10 increments and 0.36 -> 0.25-0.28 us a call (with the partial
    sums below; compiled loops).
    """
    kind = inter[0]
    if kind == KIND_FFT or kind == KIND_DENSE:
        _convolution_psi(inter, rho, V, out)
        return
    n0, n1 = rho.shape
    flat = rho.reshape(n0 * n1)
    o = out.reshape(n0 * n1)
    v = V.reshape(n0 * n1)
    for i in range(flat.size):
        o[i] = v[i]
    if kind == KIND_SEPARABLE:
        # rank r (a handful): loops over contiguous rows, no temporaries; two BLAS calls
        # and their two allocations cost more than the 4rM flops on coarse grids (on 96
        # cells, rank 3: 1.2 us against 0.3 us). Each inner product in four partial sums
        # (interleaved cells): four dependency chains instead of one.
        vol, Fs, Gs = inter[1], inter[3], inter[4]
        n = flat.size
        n4 = n - n % 4
        for k in range(Fs.shape[0]):
            a0 = a1 = a2 = a3 = 0.0
            for i in range(0, n4, 4):
                a0 += Gs[k, i] * flat[i]
                a1 += Gs[k, i + 1] * flat[i + 1]
                a2 += Gs[k, i + 2] * flat[i + 2]
                a3 += Gs[k, i + 3] * flat[i + 3]
            for i in range(n4, n):
                a0 += Gs[k, i] * flat[i]
            ck = ((a0 + a1) + (a2 + a3)) * vol
            if ck != 0.0:
                for i in range(n):
                    o[i] += ck * Fs[k, i]


@nb.njit(cache=True)
def _convolution_psi(inter, rho, V, out):
    """:func:`compute_psi` for the dense and the FFT interaction operators."""
    kind, vol, K, Khat, fft_shape = inter[0], inter[1], inter[2], inter[5], inter[6]
    n0, n1 = rho.shape
    if kind == KIND_FFT:
        if n1 == 1:  # 1D: a real FFT of length fft_shape[0] (Khat holds its rfft)
            L = fft_shape[0]
            conv1 = np.fft.irfft(np.fft.rfft(rho[:, 0], L) * Khat[:, 0], L)
            for i in range(n0):
                out[i, 0] = V[i, 0] + vol * conv1[i]
            return
        conv = np.fft.irfftn(np.fft.rfftn(rho, fft_shape) * Khat, fft_shape)
        for i in range(n0):
            for j in range(n1):
                out[i, j] = V[i, j] + vol * conv[i, j]
        return
    flat = rho.reshape(n0 * n1)
    o = out.reshape(n0 * n1)
    v = V.reshape(n0 * n1)
    conv = K @ flat
    for i in range(flat.size):
        o[i] = v[i] + vol * conv[i]


@nb.njit(cache=True)
def stage_fluxes(rho, phi_args, geom, scheme, Fx, Fy, phi):
    r"""Fill the face fluxes of a state with cell potential inputs
    ``phi_args = (psi, log_m, temperature, xi)``; return the Courant rate
    :math:`2\sum_a \max|u_a|/h_a`."""
    psi, log_m, temperature, xi = phi_args
    hx, hy, px, py = geom
    theta, order = scheme[0], int(scheme[1])
    potential_field(rho, psi, log_m, temperature, xi, phi)
    floor = SPEED_FLOOR_REL * np.max(rho)
    vx = axis_fluxes(rho, phi, hx, px, theta, order, floor, Fx)
    vy = 0.0
    if Fy.size > 0:
        vy = axis_fluxes(rho.T, phi.T, hy, py, theta, order, floor, Fy.T)
    return 2.0 * (vx / hx + vy / hy)


@nb.njit(cache=True)
def fv_rate(rho, phi_args, geom, scheme, Fx, Fy, phi, out):
    """Semi-discrete rate ``out = -div F`` (no limiter). Returns the Courant rate."""
    rate = stage_fluxes(rho, phi_args, geom, scheme, Fx, Fy, phi)
    hx, hy = geom[0], geom[1]
    n0, n1 = rho.shape
    for i in range(n0):
        for j in range(n1):
            d = (Fx[i + 1, j] - Fx[i, j]) / hx
            if Fy.size > 0:
                d += (Fy[i, j + 1] - Fy[i, j]) / hy
            out[i, j] = -d
    return rate


@nb.njit(cache=True)
def dt_bound(courant_rate, xi, temperature, geom, two_d, cfl):
    r"""Largest admissible step: transport (positivity) and diffusion (stability) bounds,
    :math:`\Delta t \le c/(2\sum_a\max|u_a|/h_a)` and
    :math:`\Delta t \le c/(2\xi\beta^{-1}\sum_a h_a^{-2})`."""
    hx, hy = geom[0], geom[1]
    dt = np.inf
    if courant_rate > 0.0:
        dt = cfl / courant_rate
    if temperature > 0.0:
        inv_h2 = 1.0 / (hx * hx)
        if two_d:
            inv_h2 += 1.0 / (hy * hy)
        dt = min(dt, cfl / (2.0 * xi * temperature * inv_h2))
    return dt


@nb.njit(cache=True)
def check_state(rho, neg_tol):
    """Status code for a state: NaN/inf or negative beyond ``-neg_tol``."""
    for v in rho.flat:
        if not math.isfinite(v):
            return STATUS_NAN
        if v < -neg_tol:
            return STATUS_NEGATIVE
    return STATUS_OK


@nb.njit(cache=True)
def rk_step(rho, t, dt_cap, table, inter, V, log_m, temperature, sched, geom, scheme, work):
    r"""One adaptive SSP-RK step in place. Returns ``(status, dt_taken, limited_cells)``.

    The step is the smaller of ``dt_cap`` and the SSP coefficient times the
    forward-Euler CFL/diffusion bound at the first stage. A later stage whose Euler
    substep ``d*dt`` violates either bound at full strength (Courant number above one, or
    the diffusion bound with that stage's :math:`\xi`) rejects the step, which is
    retried with half the step. ``table`` is a row of :data:`SSP_TABLES`,
    ``scheme = (theta, order, cfl, dt_min)``, ``sched = (code, params)``; ``dt_cap`` must
    be finite unless the state may be stationary.
    """
    rho0, stage, nxt, psi, phi, Fx, Fy, scale = work
    hx, hy = geom[0], geom[1]
    cfl, dt_min = scheme[2], scheme[3]
    two_d = Fy.size > 0
    nst = table.shape[0]
    ssp = 1.0 / np.max(table[:, 3])
    rho0[:] = rho
    xi0 = schedule_value(sched[0], sched[1], t)
    compute_psi(inter, rho0, V, psi)
    rate0 = stage_fluxes(rho0, (psi, log_m, temperature, xi0), geom, scheme, Fx, Fy, phi)
    dt = min(dt_cap, ssp * dt_bound(rate0, xi0, temperature, geom, two_d, cfl))
    limited = 0
    if not math.isfinite(dt):
        # no admissible speed and no cap: the state does not move (e.g. a single occupied
        # cell without diffusion)
        return STATUS_OK, dt, limited
    while True:
        if dt < dt_min and dt < dt_cap:
            return STATUS_DT, dt, limited
        ok = True
        for k in range(nst):
            a, b, c, d = table[k, 0], table[k, 1], table[k, 2], table[k, 3]
            if k > 0:
                xik = schedule_value(sched[0], sched[1], t + c * dt)
                compute_psi(inter, stage, V, psi)
                ratek = stage_fluxes(stage, (psi, log_m, temperature, xik), geom, scheme, Fx, Fy, phi)
                # positivity (Courant <= 1) and diffusion stability with this stage's xi
                if d * dt > dt_bound(ratek, xik, temperature, geom, two_d, 1.0):
                    ok = False
                    break
            src = rho0 if k == 0 else stage
            limited += euler_update(src, rho0, a, b, d * dt, Fx, hx, Fy, hy, scale, nxt)
            stage[:] = nxt
        if ok:
            break
        dt = 0.5 * dt
        compute_psi(inter, rho0, V, psi)
        stage_fluxes(rho0, (psi, log_m, temperature, xi0), geom, scheme, Fx, Fy, phi)
    status = check_state(stage, 1e-12 * np.max(np.abs(stage)))
    if status == STATUS_OK:
        rho[:] = stage
    return status, dt, limited


@nb.njit(cache=True)
def advance(rho, t, t_end, dt_max, table, inter, V, log_m, temperature, sched, geom, scheme, work,
            max_steps):
    """Step from ``t`` to exactly ``t_end``, or pause after ``max_steps`` steps.

    Returns ``(status, t, steps, dt_last, limited_cells)``; on failure ``rho`` holds the
    last good state and ``t`` its time. Each step depends only on ``(rho, t, t_end)``, so
    pausing and calling again takes the same steps.
    """
    steps = 0
    limited = 0
    dt_last = 0.0
    while t < t_end and steps < max_steps:
        remaining = t_end - t
        status, dt, lim = rk_step(rho, t, min(dt_max, remaining), table, inter, V, log_m,
                                  temperature, sched, geom, scheme, work)
        limited += lim
        if status != STATUS_OK:
            return status, t, steps, dt, limited
        steps += 1
        if dt >= remaining:
            t = t_end
        else:
            t += dt
            dt_last = dt
    return STATUS_OK, t, steps, dt_last, limited


def as_2d(a: np.ndarray) -> np.ndarray:
    """View a 1D grid array as ``(n, 1)``; 2D arrays pass through."""
    return a.reshape(a.shape[0], -1)


def make_workspace(shape2d: tuple[int, int], two_d: bool) -> tuple:
    """Arrays reused by :func:`rk_step`: rho0, stage, next, psi, phi, Fx, Fy, scale."""
    n0, n1 = shape2d
    Fx = np.zeros((n0 + 1, n1))
    Fy = np.zeros((n0, n1 + 1)) if two_d else np.zeros((0, 0))
    return tuple(np.zeros(shape2d) for _ in range(5)) + (Fx, Fy, np.zeros(shape2d))
