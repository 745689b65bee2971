r"""A finite-volume JKO step: the upwind-linearised JKO scheme ("LJKO").

Equation. The mean-field gradient flow

.. math:: \partial_t\rho = \xi(t)\,\nabla\cdot\big(\rho\,\nabla(\Psi[\rho] + T\log(\rho/m))\big),
          \qquad \Psi[\rho] = V + U\rho,\quad T = 1/\beta \ge 0,

is the Wasserstein gradient flow of :math:`F[\rho] = \int V\rho + \tfrac12\iint U\rho\rho
+ T\int\rho\log(\rho/m)`. The caller folds :math:`\xi` into the step :math:`\tau`.

Scheme. On cell averages :math:`\rho_K` (cell volume :math:`|C|`), with the face difference
:math:`G` and its adjoint :math:`G^\top` of :class:`~ddsolve.grid.faces.Faces` (minus the
divergence), one step from :math:`\rho^n > 0` solves for :math:`\rho = \rho^{n+1}`

.. math::

    \rho_K - \rho^n_K + \tau\,\big(G^\top(m_\sigma\,G\mu)\big)_K = 0, \qquad
    \mu_K = \Psi_K[\rho] + T(\log\rho_K - \log m_K),

with the mobility :math:`m_\sigma = \rho^n` *upwinded* on each face :math:`\sigma = (L, R)`
with respect to the new potential: :math:`m_\sigma = \rho^n_L` if :math:`\mu_L > \mu_R`
(mass flows from :math:`L` to :math:`R`), else :math:`\rho^n_R`. This is the optimality
system of

.. math::

    \min_\rho\; F_h(\rho) + \frac{1}{2\tau}W_{\rm lin}^2(\rho^n, \rho), \qquad
    \frac{1}{2\tau}W_{\rm lin}^2(\rho^n,\rho) = \sup_\phi\;\sum_K(\rho_K - \rho^n_K)\phi_K|C|
       - \frac\tau2\sum_\sigma \big(\rho^n_L[(G\phi)_\sigma^+]^2
       + \rho^n_R[(G\phi)_\sigma^-]^2\big)|C|,

with :math:`F_h` of :class:`~ddsolve.grid.grid_model.GridModel` (its gradient is
:math:`|C|(\mu_K + T)`, and the constant :math:`T` is annihilated by :math:`G`). The
optimal dual potential is :math:`\phi = -\mu`, and at the solution

.. math:: W_{\rm lin}^2 = \tau^2\sum_\sigma m_\sigma (G\mu)_\sigma^2\,|C|.

This is the linearised JKO scheme of Cancès, Gallouët & Todeschi (2020) with the upwind
mobility (their "upwind" choice of the face reconstruction) on the Cartesian/radial grids of
ddsolve; radial axes and charge axes enter only through :math:`\log m` and the faces.

Properties.

* Mass is conserved exactly by the equations: :math:`\sum_K (G^\top F)_K = 0` (faces
  telescope). The converged Newton iterate conserves it up to the residual, and is
  multiplied by the factor :math:`1 + O(\texttt{inner\_tol})` that restores it to
  round-off; this shifts :math:`\log\rho` by a constant, which :math:`G` annihilates, so
  the returned density still solves the system to :math:`O(\texttt{inner\_tol})`.
* Positivity: Newton is run on :math:`u = \log\rho`, so iterates are positive (up to
  underflow: densities below the double range, e.g. near :math:`r = 0` on radial grids of
  high dimension, are stored as 0 though their logarithm was finite).
* For convex :math:`F_h` the minimiser is unique, and since :math:`\rho^n` is feasible at
  zero distance, the discrete JKO inequality
  :math:`F_h(\rho^{n+1}) + W_{\rm lin}^2/(2\tau) \le F_h(\rho^n)` holds for every
  :math:`\tau`. For non-convex :math:`F_h` (e.g. attractive interaction) the step is a
  critical point; ``info['jko_gap']`` reports
  :math:`F_h(\rho^n) - F_h(\rho^{n+1}) - W_{\rm lin}^2/(2\tau)` so callers can check it.
* The discrete Gibbs state :math:`\rho_K \propto m_K e^{-\beta\Psi_K}` makes :math:`\mu`
  constant, hence is an exact fixed point.

Solver. Generalised (semismooth) Newton on the residual in the variable :math:`u=\log\rho`,
with the upwind switch frozen in each Jacobian: :math:`\partial_u R = \mathrm{diag}(\rho) +
\tau\,G^\top \mathrm{diag}(m_\sigma) G\,(T + \varepsilon/\rho + K|C|\,\mathrm{diag}\rho)`.
The local part is sparse and factorised with SuperLU; with an interaction operator the full
system is solved by GMRES, matrix-free through ``operator.apply``, preconditioned by that
factorisation (on small grids, if GMRES stalls, with the dense Jacobian instead). Newton is
globalised by backtracking on the merit :math:`\|R\|_1`, and a step in :math:`u` is clipped
to ``max_log_step`` per cell. If Newton fails, or (non-convex :math:`F_h`) converges to a
critical point violating the JKO inequality, the step is re-solved by continuation in
:math:`\tau` from :math:`\tau/2^j` (where the minimiser is close to :math:`\rho^n`), each
rung warm-started from the previous one and accepted only if it satisfies the JKO
inequality; of the candidates the one of least objective
:math:`F_h + W_{\rm lin}^2/(2\tau)` is returned. Convergence: the scale-free residual

.. math:: r = \frac{\sum_K |R_K|\,|C|}{\sum_K \rho^n_K|C|
          + \tau\sum_\sigma 2\,m_\sigma|(G\mu)_\sigma|\,h_\sigma^{-1}|C|} < \texttt{inner\_tol},

the :math:`L^1` norm of the residual relative to the mass plus the :math:`L^1` size of the
face terms summed in :math:`G^\top`; the second term keeps the test above round-off when
:math:`\tau/h^2` is huge, and is negligible against the mass for :math:`\tau` of the order
of the explicit limit.

Without diffusion (:math:`T = 0`) positivity is the constraint :math:`\rho\ge 0`, imposed as
in the interior-point LJKO code of Natale & Todeschi by a log barrier: the objective gets
:math:`-\varepsilon\sum_K\log\rho_K|C|`, i.e. :math:`\mu_K = \Psi_K - \varepsilon/\rho_K`, and
:math:`\varepsilon` is driven from ``eps0`` to ``eps_min`` (both relative to the scale of
:math:`\Psi`) by a factor ``eps_factor``, with Newton at each value (the final iterate is the
solution of the last barrier problem; :math:`\varepsilon_{\min}\sim 10^{-10}` of the scale).
Without interaction :math:`\mu = V` does not depend on :math:`\rho`, so when the constraint is
inactive (:math:`\tau` within the CFL limit) the step is exactly explicit upwind Euler; for
larger :math:`\tau` the constraint binds and the step stays positive, conservative and
energy-decreasing but is no longer accurate. Large steps (:math:`\tau` hundreds of times the
CFL limit) with interaction at :math:`T = 0` may fail (``None`` returned).

References
----------
C. Cancès, T. O. Gallouët, G. Todeschi, "A variational finite volume scheme for
Wasserstein gradient flows", Numer. Math. 146 (2020) 437–480.
A. Natale, G. Todeschi, "TPFA finite volume approximation of Wasserstein gradient flows",
FVCA IX (2020), Springer Proc. Math. Stat. 323; code: github.com/gptod/LJKO_IPM.

Examples
--------
>>> import numpy as np
>>> from ddsolve import GridModel, Model, cartesian
>>> from ddsolve.model.potentials import QuadraticPotential
>>> gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0), cartesian([-5, 5], 50))
>>> jko = FiniteVolumeJKO(gm)
>>> x = gm.coords.cell_centers()[..., 0]
>>> s = jko.initial_state(np.exp(-(x - 1) ** 2) / gm.mass(np.exp(-(x - 1) ** 2)))
>>> new, info = jko.step(s, 0.1)
>>> info["converged"], abs(gm.mass(new) - gm.mass(s)) < 1e-13
(True, True)
>>> jko.free_energy(new) + info["distance2"] / 0.2 <= jko.free_energy(s)
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ddsolve.grid.faces import Faces
from ddsolve.grid.grid_model import DENSITY_FLOOR, GridModel

__all__ = ["FiniteVolumeJKO"]


class FiniteVolumeJKO:
    r"""One linearised-JKO step (upwind mobility) of a :class:`GridModel` (module doc).

    Parameters
    ----------
    grid_model : GridModel
    inner_tol : float
        Newton stops when the scale-free residual :math:`r` of the module doc (the
        :math:`L^1` residual relative to the mass plus the size of the flux terms) is below.
    max_inner : int
        Newton iterations allowed per solve (per barrier value when :math:`T = 0`); the
        whole step, continuation fallback included, is capped at
        ``max_inner * (number of barrier values + 10)``.
    max_log_step : float
        Largest change of :math:`\log\rho` in one Newton step.
    eps0, eps_min, eps_factor : float
        Barrier continuation for :math:`T = 0` (relative to the scale of :math:`\Psi`).
    dense_limit : int
        With interaction, the Newton system is solved by GMRES (matrix-free, preconditioned
        by the local factorisation); when GMRES does not converge, grids of at most this many
        cells fall back to the dense Jacobian (``operator.matrix()``).

    Notes
    -----
    The state is the grid density itself (a copy). ``step`` never raises on a numerical
    failure: it returns ``(None, info)`` with ``info['reason']``.
    """

    name = "fv"
    supports_bdf2 = False

    def __init__(self, grid_model: GridModel, inner_tol: float = 1e-10, max_inner: int = 50,
                 max_log_step: float = 10.0, eps0: float = 1e-2, eps_min: float = 1e-10,
                 eps_factor: float = 0.1, dense_limit: int = 1000) -> None:
        if not inner_tol > 0:
            raise ValueError(f"inner_tol must be positive, got {inner_tol}")
        if int(max_inner) < 1:
            raise ValueError(f"max_inner must be at least 1, got {max_inner}")
        self.gm = grid_model
        self.inner_tol = float(inner_tol)
        self.max_inner = int(max_inner)
        self.max_log_step = float(max_log_step)
        self.eps0, self.eps_min, self.eps_factor = float(eps0), float(eps_min), float(eps_factor)
        self.dense_limit = int(dense_limit)
        coords = grid_model.coords
        self.shape = tuple(coords.shape)
        self.M = coords.size
        self.vol = float(coords.cell_volume)
        self.faces = Faces(coords)
        self.T = float(grid_model.temperature)
        self.log_m = np.asarray(grid_model.log_m, float).ravel()
        f = self.faces
        # G as a sparse (faces x cells) matrix, for the Jacobian G^T diag(m) G
        nf = f.left.size
        self._G = sp.csr_matrix(
            (np.concatenate([f.inv_h, -f.inv_h]),
             (np.concatenate([np.arange(nf), np.arange(nf)]), np.concatenate([f.right, f.left]))),
            shape=(nf, self.M))
        self._GT = self._G.T.tocsr()
        self._K = None

    # state -------------------------------------------------------------------------
    def initial_state(self, rho0: np.ndarray) -> np.ndarray:
        rho0 = np.array(rho0, dtype=float)
        if rho0.shape != self.shape:
            raise ValueError(f"density has shape {rho0.shape}, the grid {self.shape}")
        return rho0

    def density(self, state: np.ndarray) -> np.ndarray:
        return state

    def free_energy(self, state: np.ndarray) -> float:
        return self.gm.free_energy(state)

    # pieces ------------------------------------------------------------------------
    def _mu(self, rho: np.ndarray, eps: float, u: np.ndarray | None = None) -> np.ndarray:
        r""":math:`\Psi + T(u - \log m) - \varepsilon/\rho` on flat cells, :math:`u = \log\rho`
        (passed by Newton, so that densities below the double range keep their logarithm)."""
        mu = self.gm.psi(rho.reshape(self.shape)).ravel()
        if self.T > 0:
            if u is None:
                u = np.log(np.maximum(rho, DENSITY_FLOOR))
            mu = mu + self.T * (u - self.log_m)
        if eps > 0:
            mu = mu - eps / rho
        return mu

    def _mobility(self, rho_n: np.ndarray, g: np.ndarray) -> np.ndarray:
        r"""Upwind :math:`\rho^n`: left cell when :math:`G\mu < 0` (flow to the right)."""
        return np.where(g < 0, rho_n[self.faces.left], rho_n[self.faces.right])

    def _residual(self, rho, rho_n, tau, eps, u=None):
        g = self.faces.difference(self._mu(rho, eps, u))
        mob = self._mobility(rho_n, g)
        return rho - rho_n + tau * self.faces.adjoint(mob * g), g, mob

    def _newton_direction(self, rho, res, mob, tau, eps):
        """Solve ``dR/du delta = -res`` (switch frozen); ``None`` on failure."""
        A = self._GT @ sp.diags(mob) @ self._G  # G^T diag(m) G (cells x cells)
        dloc = self.T + (eps / rho if eps > 0 else 0.0)
        local = (sp.diags(np.maximum(rho, DENSITY_FLOOR))
                 + tau * (A @ sp.diags(dloc * np.ones(self.M)))).tocsc()
        try:
            # structurally symmetric (A is symmetric): minimum degree on A^T + A
            lu = spla.splu(local, permc_spec="MMD_AT_PLUS_A")
        except RuntimeError:
            return None
        op = self.gm.operator
        if op is None:
            delta = lu.solve(-res)
        else:
            shape = self.shape

            def matvec(v):
                return local @ v + tau * (A @ op.apply((rho * v).reshape(shape)).ravel())

            full = spla.LinearOperator((self.M, self.M), dtype=float, matvec=matvec)
            prec = spla.LinearOperator((self.M, self.M), dtype=float, matvec=lu.solve)
            delta, info = spla.gmres(full, -res, M=prec, rtol=1e-12, atol=0.0, restart=60,
                                     maxiter=3)
            if info != 0 and self.M <= self.dense_limit:
                # the local preconditioner misses a dominant interaction (e.g. T = 0 with a
                # small barrier): small grids solve with the dense Jacobian K|C| instead
                # (SuperLU, which is indifferent to the BLAS threading)
                dense = local.toarray() + tau * (A @ (self._dense_K() * rho[None, :]))
                try:
                    delta = spla.splu(sp.csc_matrix(dense)).solve(-res)
                except RuntimeError:
                    return None
            elif info < 0:
                return None
        if not np.all(np.isfinite(delta)):
            return None
        return delta

    def _dense_K(self) -> np.ndarray:
        """Dense Jacobian ``K|C|`` of ``operator.apply`` (built once, small grids only)."""
        if self._K is None:
            self._K = np.asarray(self.gm.operator.matrix(), float) * self.vol
        return self._K

    def _solve(self, u, rho_n, tau, eps, tol, info):
        """Damped generalised Newton in ``u = log rho`` for one barrier value."""
        mass_n = np.sum(np.abs(rho_n))
        rho = np.exp(u)
        two_inv_h = 2.0 * self.faces.inv_h

        def merit(u_try, rho_try):
            res, g, mob = self._residual(rho_try, rho_n, tau, eps, u_try)
            # size of the terms summed in R, so that the test stays above round-off
            scale = mass_n + tau * np.sum(mob * np.abs(g) * two_inv_h)
            return np.sum(np.abs(res)), res, mob, scale

        r, res, mob, scale = merit(u, rho)
        for _ in range(self.max_inner + 1):
            if not np.isfinite(r):
                info["reason"] = "non-finite residual"
                return None, r / scale
            if r < tol * scale:
                return u, r / scale
            if info["iterations"] >= min(info["_budget"], info["_total"]):
                break
            info["iterations"] += 1
            delta = self._newton_direction(rho, res, mob, tau, eps)
            if delta is None:
                info["reason"] = "linear solver failure"
                return None, r
            alpha = 1.0
            while True:
                # each log-density moves by at most max_log_step
                u_try = u + np.clip(alpha * delta, -self.max_log_step, self.max_log_step)
                rho_try = np.exp(u_try)
                r_try, res_try, mob_try, scale_try = merit(u_try, rho_try)
                if np.isfinite(r_try) and r_try <= (1 - 1e-4 * alpha) * r:
                    break
                alpha *= 0.5
                if alpha < 1e-8:
                    info["reason"] = "line search failure"
                    return None, r / scale
            u, rho, r, res, mob, scale = u_try, rho_try, r_try, res_try, mob_try, scale_try
        info["reason"] = f"no convergence within {self.max_inner} Newton iterations"
        return None, r / scale

    def _eps_scale(self, rho_n: np.ndarray) -> float:
        """Scale of the barrier: spread of Psi(rho^n) times a typical density."""
        psi = self.gm.psi(rho_n.reshape(self.shape)).ravel()
        spread = float(np.max(psi) - np.min(psi))
        mean_rho = float(np.sum(rho_n) / self.M)
        return max(spread, 1.0) * max(mean_rho, DENSITY_FLOOR)

    # the step ----------------------------------------------------------------------
    def step(self, state: np.ndarray, tau: float) -> tuple[np.ndarray | None, dict]:
        """One LJKO step of length ``tau`` from ``state``.

        Returns
        -------
        new_state : ndarray or None
            ``None`` when the inner solver fails.
        info : dict
            ``iterations`` (Newton steps, all barrier values), ``residual`` (final scale-free
            residual), ``distance2`` (:math:`W_{\\rm lin}^2`), ``converged``, ``reason`` (on
            failure), ``jko_gap`` (:math:`F_h(\\rho^n) - F_h(\\rho^{n+1}) - W^2/(2\\tau)`),
            ``mass_change`` (relative), ``barrier`` (final epsilon, 0 when T > 0).
        """
        info: dict = {"iterations": 0, "residual": float("nan"), "distance2": float("nan"),
                      "converged": False, "reason": "", "barrier": 0.0}
        rho_n = np.asarray(state, float).ravel()
        tau = float(tau)
        if not (np.isfinite(tau) and tau > 0):
            info["reason"] = f"tau must be positive and finite, got {tau}"
            return None, info
        if not np.all(np.isfinite(rho_n)) or np.any(rho_n < 0) or not np.any(rho_n > 0):
            info["reason"] = "the density must be finite, non-negative and non-zero"
            return None, info
        if self.T > 0:
            floor = DENSITY_FLOOR
            eps_list = [0.0]
        else:  # empty cells start the barrier iterations slightly inside rho > 0
            floor = 1e-12 * float(np.max(rho_n))
            scale = self._eps_scale(rho_n)
            eps_list, e = [], self.eps0 * scale
            while e > self.eps_min * scale:
                eps_list.append(e)
                e *= self.eps_factor
            eps_list.append(self.eps_min * scale)
        eps = eps_list[-1]
        u0 = np.log(np.maximum(rho_n, floor))
        f_old = self.free_energy(state)
        # cap on the Newton iterations of the whole step (barrier levels, continuation)
        info["_total"] = self.max_inner * (len(eps_list) + 10)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                u = self._attempt(u0, rho_n, tau, eps_list, info)
                best = None if u is None else self._finish(u, rho_n, tau, eps, f_old)
                if best is None or best[1]["jko_gap"] < -1e-12 * abs(f_old):
                    # failure, or (non-convex energy) a critical point that is not a
                    # minimiser: follow the minimiser from rho^n by continuation in tau
                    first_reason = info["reason"]
                    info["reason"] = ""
                    u = self._continuation(u0, rho_n, tau, eps_list, info, f_old)
                    cand = None if u is None else self._finish(u, rho_n, tau, eps, f_old)
                    if cand is not None and (best is None or cand[1]["objective"]
                                             < best[1]["objective"]):
                        best = cand
                    if best is None:
                        info["reason"] = first_reason or info["reason"]
                        return None, _clean(info)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError, RuntimeError) as exc:
            info["reason"] = f"{type(exc).__name__}: {exc}"
            return None, _clean(info)
        new, extra = best
        info.update(extra)
        info["reason"] = ""
        info["converged"] = True
        return new, _clean(info)

    def _attempt(self, u, rho_n, tau, eps_list, info):
        """The barrier sequence (a single solve when T > 0) from ``u``; ``None`` on failure."""
        for k, eps in enumerate(eps_list):
            last = k == len(eps_list) - 1
            # the intermediate barrier problems only need a rough solution
            tol = self.inner_tol if last else max(self.inner_tol, 1e-6)
            info["_budget"] = info["iterations"] + self.max_inner
            u, r = self._solve(u, rho_n, tau, eps, tol, info)
            info["residual"] = float(r)
            if u is None:
                return None
        return u

    def _gap_ok(self, u, rho_n, tau, eps, f_old):
        """Whether the solution ``u`` of a step of length ``tau`` satisfies the JKO
        inequality (a non-minimising critical point of a non-convex energy need not)."""
        out = self._finish(u, rho_n, tau, eps, f_old)
        return out is not None and out[1]["jko_gap"] >= -1e-12 * abs(f_old)

    def _continuation(self, u0, rho_n, tau, eps_list, info, f_old, max_halvings=12):
        """Solve for tau/2^j, ..., tau, each warm-started from the last. A rung is accepted
        when it converges and satisfies the JKO inequality; otherwise the increase of tau
        is reduced (2, 2^(1/2), 2^(1/4), 2^(1/8)), to stay on the branch of minimisers that
        starts at rho^n for tau -> 0."""
        eps = eps_list[-1]
        t, u = tau, None
        for _ in range(max_halvings):
            t *= 0.5
            u = self._attempt(u0, rho_n, t, eps_list, info)
            if u is not None and self._gap_ok(u, rho_n, t, eps, f_old):
                break
            u = None
        if u is None:
            return None
        rungs = 1
        while t < tau:
            u_next = None
            for ratio in (2.0, 2.0**0.5, 2.0**0.25, 2.0**0.125):
                t_next = min(ratio * t, tau)
                u_next = self._attempt(u, rho_n, t_next, eps_list, info)
                if u_next is not None and self._gap_ok(u_next, rho_n, t_next, eps, f_old):
                    break
                u_next = None
            if u_next is None:
                # keep the last candidate at tau even if it violates the inequality
                return self._attempt(u, rho_n, tau, eps_list, info)
            u, t = u_next, t_next
            rungs += 1
        info["continuation"] = rungs
        return u

    def _finish(self, u, rho_n, tau, eps, f_old):
        """The returned density and its diagnostics; ``None`` if not finite."""
        rho = np.exp(u)
        # Restore the mass (exactly conserved by the equations, up to the residual) with a
        # scalar factor 1 + O(tol): it shifts log(rho) by a constant, which G annihilates,
        # so the rescaled density still solves the system to O(tol) (unlike the flux form
        # rho^n - tau G^T(...), whose residual is O(tol) times the Jacobian).
        factor = np.sum(rho_n) / np.sum(rho)
        new = rho * factor
        res, g, mob = self._residual(new, rho_n, tau, eps, u + np.log(factor))
        scale = np.sum(rho_n) + tau * np.sum(mob * np.abs(g) * 2.0 * self.faces.inv_h)
        d2 = float(tau**2 * np.sum(mob * g**2) * self.vol)
        new = new.reshape(self.shape)
        if not (np.all(np.isfinite(new)) and np.isfinite(d2)):
            return None
        f_new = self.free_energy(new)
        return new, {
            "residual": float(np.sum(np.abs(res)) / scale),  # of the returned density
            "barrier": float(eps),
            "distance2": d2,
            "objective": float(f_new + d2 / (2 * tau)),
            "jko_gap": float(f_old - f_new - d2 / (2 * tau)),
            "mass_change": float((np.sum(new) - np.sum(rho_n)) / np.sum(rho_n)),
        }


def _clean(info: dict) -> dict:
    info.pop("_budget", None)
    info.pop("_total", None)
    return info
