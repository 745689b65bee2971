r"""Pseudo-arclength continuation of stationary states in one parameter, with fold and
branch-point detection, location by bisection, and branch switching.

Branches of :math:`R(z, p) = 0` (the self-consistency residual of
:mod:`ddsolve.steady.selfconsistency`, in the symmetry-reduced unknowns) are followed by
Keller's pseudo-arclength method: from a point :math:`u_k = (z_k, p_k)` with unit tangent
:math:`t_k` the predictor :math:`u_k + \Delta s\,t_k` is corrected by Newton on

.. math:: R(z, p) = 0, \qquad \langle t_k, u - u_k\rangle_W - \Delta s = 0,

whose Jacobian is the bordered matrix :math:`\mathcal B = \begin{pmatrix} J & R_p\\
t_k^\top W & 0\end{pmatrix}` (Keller, in *Applications of Bifurcation Theory*, 1977;
Allgower & Georg, *Introduction to Numerical Continuation Methods*, 2003, §2.2). The
step grows after easy corrections and halves after failed ones.

Special points are found from sign changes between consecutive points:

* **branch point**: :math:`\operatorname{sign}\det\mathcal B` changes. It is constant
  along a regular branch with a continuously oriented tangent and changes at every
  simple bifurcation point, on *either* branch through it (Allgower & Georg, Thm 8.1.14),
  so a pitchfork is detected whether it is approached along the symmetric branch or
  along a side branch;
* **fold**: the parameter component of the tangent changes sign while
  :math:`\det\mathcal B` does not (at a fold :math:`\mathcal B` is regular).

Each is located by bisection on the arclength to ``locate_tol`` in the parameter and
reported with its bracket. At a branch point the null space of :math:`(J\ R_p)` is two
dimensional; its direction orthogonal to the current tangent starts the new branches
(both orientations; a start that lies on a known branch, or on its image under the
symmetry, is dropped).

Examples
--------
>>> from ddsolve.grid import cartesian, GridModel
>>> from ddsolve.model import Model, DoubleWellPotential, QuadraticKernel
>>> gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=1.0),
...                cartesian([-3.0, 3.0], 200))
>>> diagram = continue_states(BetaFamily(SelfConsistency(gm)), [1.0, 4.0])
>>> bp = diagram.special[0]
>>> bp.kind, f"{bp.parameter:.5f}"  # the continuum value is 2.18844 (to 1e-9 on the grid)
('branch-point', '2.18844')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddsolve.steady.selfconsistency import NewtonFailure, SelfConsistency, SteadyState, newton
from ddsolve.steady.stability import stability

__all__ = ["Family", "BetaFamily", "RebuildFamily", "ContinuationPoint", "SpecialPoint",
           "Branch", "Diagram", "continue_states"]


# --------------------------------------------------------------------- families
class Family:
    """A one-parameter family of self-consistency problems :math:`R(\\cdot, p)`."""

    key: str = "p"

    def problem(self, p: float) -> SelfConsistency:
        raise NotImplementedError

    def residual(self, y: np.ndarray, p: float) -> np.ndarray:
        return self.problem(p).reduced_residual(y)

    def jacobian(self, y: np.ndarray, p: float) -> np.ndarray:
        return _dense(self.problem(p).reduced_jacobian(y))

    def d_parameter(self, y: np.ndarray, p: float) -> np.ndarray:
        h = 1e-7 * max(1.0, abs(p))
        return (self.residual(y, p + h) - self.residual(y, p - h)) / (2 * h)


class BetaFamily(Family):
    """Continuation in :math:`\\beta` (``model.beta``): one grid model, the residual's
    derivative in :math:`\\beta` exact."""

    key = "model.beta"

    def __init__(self, base: SelfConsistency) -> None:
        self.base = base
        self._cache: dict[float, SelfConsistency] = {}

    def problem(self, p: float) -> SelfConsistency:
        if not p > 0:
            raise NewtonFailure(f"model.beta left (0, inf): {p:.6g}", p)
        sc = self._cache.get(p)
        if sc is None:
            sc = self.base.with_beta(p)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[p] = sc
        return sc

    def residual(self, y, p):
        return self.base.reduced_residual(y, beta=p)

    def jacobian(self, y, p):
        return _dense(self.base.reduced_jacobian(y, beta=p))

    def d_parameter(self, y, p):
        return self.base.reduce(self.base.d_beta(self.base.expand(y), beta=p))


def _dense(J):
    if not isinstance(J, np.ndarray):
        raise ValueError("continuation needs a dense or separable Jacobian "
                         "(steady.representation = 'dense' or 'separable')")
    return J


class RebuildFamily(Family):
    """Continuation in any numeric config key: ``build(p)`` returns the problem at ``p``
    (cached); :math:`R_p` by central differences."""

    def __init__(self, key: str, build: Callable[[float], SelfConsistency], cache: int = 32) -> None:
        self.key = key
        self._build = build
        self._cache: dict[float, SelfConsistency] = {}
        self._size = cache
        self._n: int | None = None

    def problem(self, p):
        sc = self._cache.get(p)
        if sc is None:
            sc = self._build(p)
            n = sc.n if sc.basis is None else sc.basis.shape[1]
            if self._n is None:
                self._n = n
            elif n != self._n:
                raise NewtonFailure(f"{self.key}={p:.6g} changes the number of unknowns "
                                    f"({self._n} -> {n}); use steady.representation = 'dense'", p)
            if len(self._cache) >= self._size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[p] = sc
        return sc


# --------------------------------------------------------------------- results
@dataclass
class ContinuationPoint:
    parameter: float
    y: np.ndarray
    tangent: np.ndarray
    det_sign: float
    state: SteadyState
    stability: dict[str, Any]
    kind: str = "regular"
    special: int | None = None


@dataclass
class SpecialPoint:
    """A fold or branch point: the estimate, its bracket and where it was found."""

    kind: str
    parameter: float
    bracket: tuple[float, float]
    branch: int
    state: SteadyState
    y: np.ndarray
    tangent: np.ndarray
    id: int = 0
    joined: list[int] = field(default_factory=list)
    arrivals: list[np.ndarray] = field(default_factory=list)
    switch_direction: np.ndarray | None = None
    switch_starts: list[np.ndarray] = field(default_factory=list)

    def describe(self, key: str) -> str:
        lo, hi = sorted(self.bracket)
        rel = (hi - lo) / max(abs(self.parameter), 1e-300)
        digits = max(6, min(16, int(math.ceil(-math.log10(rel))) + 2)) if rel > 0 else 16
        return (f"{self.kind} at {key} ~ {self.parameter:.{digits}g} in ({lo:.{digits}g}, {hi:.{digits}g}) "
                f"on branch {self.branch}")


@dataclass
class Branch:
    id: int
    points: list[ContinuationPoint]
    origin: str
    stopped: str = ""


@dataclass
class Diagram:
    key: str
    branches: list[Branch]
    special: list[SpecialPoint]
    failures: list[str]


# --------------------------------------------------------------------- the method
class _Continuer:
    def __init__(self, family: Family, bounds, ds, ds_min, ds_max, max_points, tol,
                 locate_tol, max_corrector, stability_k):
        self.f = family
        self.lo, self.hi = min(bounds), max(bounds)
        self.ds, self.ds_min, self.ds_max = ds, ds_min, ds_max
        self.max_points, self.tol, self.locate_tol = max_points, tol, locate_tol
        self.max_corrector, self.k = max_corrector, stability_k
        self.min_cos = 0.95

    # inner product weight: unknowns share unit weight with the parameter
    def w(self, n: int) -> np.ndarray:
        return np.concatenate([np.full(n, 1.0 / max(n, 1)), [1.0]])

    def bordered(self, y, p, t):
        J = self.f.jacobian(y, p)
        Rp = self.f.d_parameter(y, p)
        n = y.size
        B = np.zeros((n + 1, n + 1))
        B[:n, :n], B[:n, n] = J, Rp
        B[n] = t * self.w(n)
        return B

    def tangent(self, y, p, t_prev):
        B = self.bordered(y, p, t_prev)
        rhs = np.zeros(y.size + 1)
        rhs[-1] = 1.0
        t = np.linalg.solve(B, rhs)
        t /= math.sqrt(float(t @ (self.w(y.size) * t)))
        if float(t @ (self.w(y.size) * t_prev)) < 0:
            t = -t
        sign, _ = np.linalg.slogdet(self.bordered(y, p, t))
        return t, sign

    def correct(self, u_pred, t):
        n = u_pred.size - 1
        u = u_pred.copy()
        wt = self.w(n) * t
        for it in range(1, self.max_corrector + 1):
            y, p = u[:n], u[n]
            r = self.f.residual(y, p)
            g = np.append(r, wt @ (u - u_pred))
            if np.linalg.norm(r, np.inf) <= self.tol * (1 + np.linalg.norm(y, np.inf)) and it > 1:
                return u, it - 1
            B = self.bordered(y, p, t)
            try:
                du = np.linalg.solve(B, -g)
            except np.linalg.LinAlgError:
                return None, it
            u = u + du
            if not np.all(np.isfinite(u)):
                return None, it
        r = self.f.residual(u[:n], u[n])
        ok = np.linalg.norm(r, np.inf) <= self.tol * (1 + np.linalg.norm(u[:n], np.inf))
        return (u, self.max_corrector) if ok else (None, self.max_corrector)

    def point(self, y, p, t, sign):
        sc = self.f.problem(p)
        state = sc.state(sc.expand(y), parameter=p)
        return ContinuationPoint(p, y.copy(), t.copy(), sign, state, stability(sc, state, self.k))

    def start(self, y, p, direction):
        n = y.size
        J = self.f.jacobian(y, p)
        Rp = self.f.d_parameter(y, p)
        dy = np.linalg.lstsq(J, -Rp, rcond=None)[0]
        t = np.append(dy, 1.0) * direction
        t /= math.sqrt(float(t @ (self.w(n) * t)))
        t, sign = self.tangent(y, p, t)
        return t, sign

    def step_from(self, pt: ContinuationPoint, ds: float):
        """Corrected point at arclength ``ds`` from ``pt`` (None if the corrector fails)."""
        u0 = np.append(pt.y, pt.parameter)
        u, iters = self.correct(u0 + ds * pt.tangent, pt.tangent)
        if u is None:
            return None, iters
        y, p = u[:-1], u[-1]
        t, sign = self.tangent(y, p, pt.tangent)
        return (y, p, t, sign), iters


def continue_states(family: Family, bounds, starts: list[tuple[np.ndarray, float]] | None = None, *,
                    ds: float = 0.02, ds_min: float = 1e-6, ds_max: float = 0.2, max_points: int = 400,
                    tol: float = 1e-11, locate_tol: float = 1e-9, max_corrector: int = 8,
                    switch: int = 2, stability_k: int = 4, switch_step: float | None = None) -> Diagram:
    r"""Continue stationary states over ``bounds = (p_start, p_stop)``.

    Parameters
    ----------
    family : Family
        :class:`BetaFamily` or :class:`RebuildFamily`.
    bounds : (float, float)
        The parameter range; branches start at ``p_start`` towards ``p_stop`` and end
        where they leave the range.
    starts : list of (z, p), optional
        Starting states (full unknowns, e.g. from :func:`~ddsolve.steady.find_states`);
        default: Newton from the Gibbs state of :math:`V` at ``p_start``.
    ds, ds_min, ds_max : float
        Initial, smallest and largest arclength step (unknowns weighted by ``1/n``).
    max_points : int
        Points per branch.
    tol : float
        Corrector tolerance (max-norm of the residual, relative to ``1 + |z|``).
    locate_tol : float
        Bracket width of a located special point, relative to ``1 + |p|``.
    switch : int
        Depth of branch switching (0: none; 1: from the start branches; 2: also from the
        branches found by switching, ...).
    stability_k : int
        Eigenvalues computed per point (:func:`~ddsolve.steady.stability.stability`).

    Returns
    -------
    Diagram
        Branches (points with state, stability and kind), special points, failures.
    """
    p0, p1 = float(bounds[0]), float(bounds[1])
    if p0 == p1:
        raise ValueError("the continuation range is empty (start == stop)")
    c = _Continuer(family, (p0, p1), ds, ds_min, ds_max, max_points, tol, locate_tol,
                   max_corrector, stability_k)
    direction = 1.0 if p1 > p0 else -1.0
    if starts is None:
        sc = family.problem(p0)
        starts = [(newton(sc, sc.initial_guess(), tol=tol).z, p0)]
    diagram = Diagram(family.key, [], [], [])
    queue: list[tuple[np.ndarray, float, np.ndarray | None, float, str, int]] = []
    for z, p in starts:
        queue.append((family.problem(p).reduce(z), p, None, direction, f"start at {family.key}={p:.6g}", 0))
    while queue:
        entry = queue.pop(0)
        if isinstance(entry[0], SpecialPoint):
            entry = _switch_start(c, diagram, *entry)
            if entry is None:
                continue
        y, p, t_init, dirn, origin, depth = entry
        branch = Branch(len(diagram.branches), [], origin)
        diagram.branches.append(branch)
        try:
            if t_init is None:
                t, sign = c.start(y, p, dirn)
            else:
                t, sign = c.tangent(y, p, t_init)
            branch.points.append(c.point(y, p, t, sign))
            _run_branch(c, diagram, branch, depth, switch, queue, switch_step)
        except (NewtonFailure, np.linalg.LinAlgError) as err:
            branch.stopped = f"failed: {err}"
            diagram.failures.append(f"branch {branch.id}: {err}")
    for sp_id, sp in enumerate(diagram.special):
        sp.id = sp_id
    return diagram


def _inside(c: _Continuer, p: float) -> bool:
    span = c.hi - c.lo
    return c.lo - 1e-9 * span <= p <= c.hi + 1e-9 * span


def _run_branch(c, diagram, branch, depth, switch, queue, switch_step):
    ds = c.ds
    f = c.f
    while len(branch.points) < c.max_points:
        last = branch.points[-1]
        res, iters = c.step_from(last, ds)
        if res is None:
            ds *= 0.5
            if ds < c.ds_min:
                branch.stopped = f"failed: corrector did not converge near {f.key}={last.parameter:.8g}"
                diagram.failures.append(f"branch {branch.id}: {branch.stopped}")
                return
            continue
        y, p, t, sign = res
        if float(t @ (c.w(t.size - 1) * last.tangent)) < c.min_cos and ds > 16 * c.ds_min:
            ds *= 0.5  # the tangent turned too far in one step: refine (and never jump branches)
            continue
        new = c.point(y, p, t, sign)
        bp = sign != last.det_sign
        fold = np.sign(t[-1]) != np.sign(last.tangent[-1]) and not bp
        if bp or fold:
            sp = _locate(c, last, new, ds, "branch-point" if bp else "fold", branch.id)
            known = _known(f, diagram, sp) if bp else None
            if known is not None:
                known.joined.append(branch.id)
                known.arrivals.append(sp.tangent.copy())
                new.kind, new.special = "branch-point", known.id
                branch.points.append(_special_point(c, sp))
                branch.points[-1].special = diagram.special.index(known)
                branch.stopped = f"joined the branch point at {f.key}={known.parameter:.8g}"
                return
            diagram.special.append(sp)
            spt = _special_point(c, sp)
            spt.special = len(diagram.special) - 1
            branch.points.append(spt)
            if bp and depth < switch:
                sp.switch_direction = _other_direction(c, sp)
                for sgn in (1.0, -1.0):
                    queue.append((sp, sgn, depth, switch_step or c.ds))
        if not _inside(c, p):
            branch.stopped = f"left the range at {f.key}={p:.8g}"
            branch.points.append(new)
            return
        branch.points.append(new)
        if len(branch.points) > 3 and _close(f, branch.points[0], new, ds):
            branch.stopped = "closed loop"
            return
        ds = min(ds * 1.5, c.ds_max) if iters <= 3 else (ds * 0.7 if iters >= 6 else ds)
    branch.stopped = f"max_points={c.max_points} reached"


def _close(f, a: ContinuationPoint, b: ContinuationPoint, ds: float) -> bool:
    sc = f.problem(b.parameter)
    d = sc.norm(sc.expand(a.y) - sc.expand(b.y))
    return abs(a.parameter - b.parameter) < 0.5 * ds and d < 0.5 * ds


def _locate(c, last, new, ds, kind, branch_id) -> SpecialPoint:
    """Bisection on the arclength between ``last`` and ``new``. Every trial point is
    corrected on the hyperplane orthogonal to the tangent at ``last`` (fixed: near a
    branch point the local tangent is ill-determined), from a predictor at the end of the
    bracket where the test function has its old value; the test functions are evaluated
    with that fixed tangent too (sign of the bordered determinant; sign of the parameter
    component of the tangent it defines)."""
    f = c.f
    t0 = last.tangent
    n = last.y.size

    def test(y, p):
        B = c.bordered(y, p, t0)
        if kind == "branch-point":
            return np.linalg.slogdet(B)[0]
        rhs = np.zeros(n + 1)
        rhs[-1] = 1.0
        return np.sign(np.linalg.solve(B, rhs)[-1])

    v_lo = test(last.y, last.parameter)
    base_u, base_s = np.append(last.y, last.parameter), 0.0
    hi_s, p_hi = ds, new.parameter
    best = (new.y, new.parameter)
    for _ in range(100):
        p_lo = base_u[-1]
        if abs(p_hi - p_lo) <= c.locate_tol * (1 + abs(p_lo)) and hi_s - base_s <= math.sqrt(c.locate_tol) * c.ds:
            break
        mid = 0.5 * (base_s + hi_s)
        u, _ = c.correct(base_u + (mid - base_s) * t0, t0)
        if u is None:
            break
        if test(u[:n], u[n]) == v_lo:
            base_u, base_s = u, mid
        else:
            hi_s, p_hi = mid, u[n]
            best = (u[:n], u[n])
    p_lo = base_u[-1]
    y, p = best
    sc = f.problem(p)
    # the tangent is not unique at a branch point: keep the branch's own, from before it
    return SpecialPoint(kind, float(0.5 * (p_lo + p_hi)), (float(p_lo), float(p_hi)), branch_id,
                        sc.state(sc.expand(y), parameter=p), np.array(y, float), t0.copy())


def _special_point(c, sp: SpecialPoint) -> ContinuationPoint:
    sc = c.f.problem(sp.state.parameter)
    pt = ContinuationPoint(sp.state.parameter, sp.y, sp.tangent, 0.0, sp.state,
                           stability(sc, sp.state, c.k), kind=sp.kind)
    return pt


def _known(f, diagram, sp: SpecialPoint) -> SpecialPoint | None:
    for other in diagram.special:
        if other.kind != "branch-point":
            continue
        if abs(other.parameter - sp.parameter) > 1e-6 * (1 + abs(sp.parameter)):
            continue
        sc = f.problem(sp.state.parameter)
        d = sc.norm(sc.expand(other.y) - sc.expand(sp.y))
        if d <= 1e-4 * (1 + sc.norm(sc.expand(sp.y))):
            return other
    return None


def _other_direction(c, sp: SpecialPoint) -> np.ndarray:
    r"""The direction of the other branch through a branch point: the null space of
    :math:`(J\ R_p)` is two dimensional there; take its part orthogonal to the tangent."""
    f = c.f
    y, p = sp.y, sp.state.parameter
    A = np.column_stack([f.jacobian(y, p), f.d_parameter(y, p)])
    _, _, vt = np.linalg.svd(A)
    null = vt[-2:]  # the two smallest right singular vectors (A is n x (n+1))
    t1 = sp.tangent / np.linalg.norm(sp.tangent)
    cand = null - np.outer(null @ t1, t1)
    t2 = cand[np.argmax(np.linalg.norm(cand, axis=1))]
    return t2 / math.sqrt(float(t2 @ (c.w(y.size) * t2)))


def _switch_start(c, diagram, sp: SpecialPoint, sgn: float, depth: int, step: float):
    """The first point of the new branch leaving ``sp`` along ``sgn`` times the other
    direction, or None when that half-branch is covered already: a branch arrived at
    ``sp`` along it, or it is the image under the symmetry of a half-branch started."""
    f = c.f
    n = sp.y.size
    t = sgn * sp.switch_direction
    w = c.w(n)
    for a in sp.arrivals:  # a branch that came in along -a covers the direction -a
        if float(-a @ (w * t)) > 0.5:
            return None
    u, _ = c.correct(np.append(sp.y, sp.state.parameter) + step * t, t)
    if u is None:
        diagram.failures.append(f"switching at {sp.describe(f.key)}: corrector failed")
        return None
    yy, pp = u[:n], u[n]
    sc = f.problem(pp)
    z = sc.expand(yy)
    scale = 1.0 + sc.norm(z)
    for other in sp.switch_starts:
        if any(sc.norm(img - other) <= 1e-6 * scale for img in sc.translation_images(z)):
            return None
    sp.switch_starts.append(z)
    return (yy, pp, t, 1.0, f"switched at {sp.describe(f.key)}", depth + 1)
