r"""Initial densities, as cell averages normalised to mass one.

Every initial law is computed as the **logarithm** of its cell averages and normalised
in logs, so laws that live far out on a radial axis (the radius of
:math:`N(0, s^2 I_d)` for :math:`d = 320` concentrates near :math:`s\sqrt{d}`, where
:math:`r^{d-1}` overflows) are represented without overflow or underflow.

Kinds (``[initial] kind = ...``):

* ``gaussian`` — ``mean`` and ``std`` (per axis) or ``cov``. On Cartesian axes the cell
  averages are exact (differences of the normal CDF, summed over images on periodic
  axes); a full covariance uses 3-point Gauss–Legendre per axis. On a radial axis the
  law is :math:`\theta\sim N(0, s^2 I_d)` and the field is the density of
  :math:`r = |\theta|`, the scaled :math:`\chi_d` law (:func:`chi_log_pdf`).
* ``uniform`` — uniform on a box ``bounds`` (default the whole domain); on a radial
  axis uniform on the shell :math:`a \le |\theta| \le b` of :math:`\mathbb{R}^d`, i.e.
  density :math:`\propto r^{d-1}` on :math:`[a, b]` (exact cell averages).
* ``mixture`` — a weighted sum of Gaussians (``means``, ``std``, ``weights``).
* ``expression`` — a non-negative expression in the axis names; on radial axes it is
  the density of :math:`r` itself.

Problems may add kinds of their own (:meth:`ddsolve.problems.Problem.initial_kinds`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammainc, gammaincc, logsumexp

from ddsolve.grid.coordinates import Axis, Coordinates, log_radial_measure
from ddsolve.laws.exact import chi_log_pdf, chi_mean, log_normal_mass
from ddsolve.model.expressions import compile_expression
from ddsolve.schema import (
    REQUIRED,
    Bounds,
    Choice,
    ConfigError,
    Expression,
    ListOf,
    Numeric,
    Param,
    Real,
    When,
    config_key,
    format_table,
    resolve_table,
)

__all__ = [
    "InitialContext",
    "InitialKind",
    "InitialDensity",
    "INITIAL_KINDS",
    "MIN_MASS_ON_GRID",
    "chi_log_pdf",
    "chi_mean",
    "gaussian_log_cell_averages",
    "normalise_log_density",
    "resolve_initial",
    "initial_density",
    "describe_kinds",
]

_GL_ORDER = 3
MIN_MASS_ON_GRID = 1e-3
"""A probability law with less of its mass on the grid is a config error."""


@dataclass
class InitialContext:
    """What an initial law may depend on: the coordinates, a seeded random generator
    (``[run] seed``) and the resolved ``[model]`` parameters."""

    coords: Coordinates
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    model_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class InitialDensity:
    """Normalised cell averages ``values`` (mass one on the grid) and, for kinds that
    are probability laws, the fraction ``mass_on_grid`` of the law inside the grid."""

    values: np.ndarray
    mass_on_grid: float | None = None


class InitialKind:
    """An initial law. Subclasses set ``name``, ``doc``, ``params`` and implement
    :meth:`log_density`.

    Attributes
    ----------
    main_key : str
        Parameter blamed when the law has no mass on the grid.
    is_law : bool
        ``True`` if :meth:`log_density` returns log cell averages of a probability law
        (so the mass it puts on the grid is meaningful).
    """

    name = ""
    doc = ""
    params: tuple[Param, ...] = ()
    main_key = "kind"
    is_law = False

    def log_density(self, params: Mapping[str, Any], ctx: InitialContext) -> np.ndarray:
        """Log cell averages (up to a constant; ``-inf`` for empty cells)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------
def _log_mean_exp(logf: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``log(sum_q w_q exp(logf[..., q]))``, stable."""
    with np.errstate(divide="ignore"):
        return logsumexp(logf + np.log(weights), axis=-1)


def _axis_nodes(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes ``(cells, q)`` and weights ``(q,)`` along one axis."""
    nodes, w = Coordinates([axis]).quadrature_nodes(_GL_ORDER)
    return nodes[..., 0], w


def _images(axis: Axis, std: float) -> np.ndarray:
    """Shifts by multiples of the period that matter for a law of width ``std``."""
    if not axis.periodic:
        return np.zeros(1)
    L = axis.upper - axis.lower
    k = math.ceil(12.0 * std / L) + 1
    return L * np.arange(-k, k + 1)


def _gaussian_axis(axis: Axis, mean: float, std: float, key: str) -> np.ndarray:
    """Log cell averages along one axis of a 1D Gaussian factor."""
    if axis.radial_dim is not None:
        if mean != 0:
            raise ConfigError(f"{key}.mean", f"on the radial axis {axis.name!r} the law N(0, s^2 I_d) "
                                             f"is centred: the mean must be 0, got {mean:g}")
        return _chi_axis(axis, std)
    e = axis.edges
    shifts = _images(axis, std)
    lo = (e[:-1, None] - mean - shifts) / std
    hi = (e[1:, None] - mean - shifts) / std
    return logsumexp(log_normal_mass(lo, hi), axis=-1) - math.log(axis.spacing)


def _chi_axis(axis: Axis, std: float) -> np.ndarray:
    """Log cell averages of the radius of N(0, std^2 I_d): exact differences of the
    chi_d CDF (regularised incomplete gamma functions, upper tail where that is more
    accurate), and Gauss–Legendre on the log-density in cells so far out that the
    difference underflows — a law narrower than a cell is still represented exactly."""
    d = axis.radial_dim
    e = axis.edges
    x = 0.5 * (e / std) ** 2
    lower, upper = gammainc(0.5 * d, x), gammaincc(0.5 * d, x)
    use_upper = lower[:-1] > 0.5
    diff = np.where(use_upper, upper[:-1] - upper[1:], lower[1:] - lower[:-1])
    nodes, w = _axis_nodes(axis)
    quad = _log_mean_exp(chi_log_pdf(nodes, d, std), w)
    with np.errstate(divide="ignore"):
        exact = np.log(np.maximum(diff, 0.0)) - math.log(axis.spacing)
    return np.where(diff > 1e-250, exact, quad)


def _per_axis(value: Any, ndim: int, key: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1 or arr.size not in (1, ndim):
        wanted = "a single number" if ndim == 1 else f"a number or {ndim} entries (one per axis)"
        raise ConfigError(key, f"needs {wanted} on a {ndim}D grid, got {value}")
    return np.broadcast_to(arr, (ndim,)).copy()


def _outer_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else parts[0][:, None] + parts[1][None, :]


def gaussian_log_cell_averages(coords: Coordinates, mean: Any = 0.0, std: Any = None,
                               cov: Any = None, key: str = "initial") -> np.ndarray:
    """Log cell averages of a Gaussian law (see the module doc); errors name
    ``<key>.mean``, ``<key>.std``, ``<key>.cov``."""
    n = coords.ndim
    mu = _per_axis(mean, n, f"{key}.mean")
    if cov is None:
        sd = _per_axis(1.0 if std is None else std, n, f"{key}.std")
        if np.any(sd <= 0):
            raise ConfigError(f"{key}.std", "must be positive")
        return _outer_sum([_gaussian_axis(a, mu[k], sd[k], key) for k, a in enumerate(coords.axes)])
    C = np.asarray(cov, dtype=float)
    C = C.reshape(1, 1) if C.ndim == 0 else C
    if C.shape != (n, n):
        raise ConfigError(f"{key}.cov", f"needs shape [{n}, {n}], got {list(C.shape)}")
    if not np.allclose(C, C.T) or np.any(np.linalg.eigvalsh(C) <= 0):
        raise ConfigError(f"{key}.cov", "must be symmetric positive definite")
    if n == 1:
        return _gaussian_axis(coords.axes[0], mu[0], math.sqrt(C[0, 0]), key)
    if coords.radial_dim is not None:
        raise ConfigError(f"{key}.cov", "a full covariance is not available with a radial axis; use std")
    nodes, w = coords.quadrature_nodes(_GL_ORDER)
    P = np.linalg.inv(C)
    log_norm = -0.5 * (n * math.log(2 * math.pi) + np.linalg.slogdet(C)[1])
    shifts = np.stack(np.meshgrid(*(_images(a, math.sqrt(C[k, k])) for k, a in enumerate(coords.axes)),
                                  indexing="ij"), -1).reshape(-1, n)
    z = nodes[..., None, :] - mu - shifts  # (*shape, q, images, n)
    logf = logsumexp(-0.5 * np.einsum("...i,ij,...j->...", z, P, z), axis=-1) + log_norm
    return _log_mean_exp(logf, w)


def _log_measure(axis: Axis, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Log of the reference measure of [a, b] along an axis: ``b - a``, or on a radial
    axis of R^d ``(b^d - a^d)/d``; ``-inf`` where ``b <= a``."""
    if axis.radial_dim is not None and axis.radial_dim > 1:
        return log_radial_measure(a, b, axis.radial_dim)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > a, np.log(b - a), -np.inf)


def _uniform_axis(axis: Axis, lo: float, hi: float) -> np.ndarray:
    """Log cell averages of the uniform law on [lo, hi] along one axis; on a radial
    axis of R^d (the shell lo <= |theta| <= hi) the density of r is proportional to
    r^(d-1)."""
    e = axis.edges
    a, b = np.clip(e[:-1], lo, hi), np.clip(e[1:], lo, hi)
    return _log_measure(axis, a, b) - _log_measure(axis, lo, hi) - math.log(axis.spacing)


def normalise_log_density(log_rho: np.ndarray, coords: Coordinates, key: str) -> tuple[np.ndarray, float]:
    """Normalise log cell averages to a density of mass one.

    Returns ``(rho, log_mass)`` where ``log_mass`` is the log of the mass before
    normalisation. Raises :class:`ConfigError` naming ``key`` for a shape mismatch,
    non-finite values, or zero mass.
    """
    log_rho = np.asarray(log_rho, dtype=float)
    if log_rho.shape != coords.shape:
        raise ConfigError(key, f"initial density has shape {list(log_rho.shape)}, "
                               f"the grid has {list(coords.shape)}")
    if np.any(np.isnan(log_rho)) or np.any(log_rho == np.inf):
        raise ConfigError(key, "initial density is not finite on the grid")
    top = float(np.max(log_rho))
    if top == -np.inf:
        raise ConfigError(key, "initial density has zero mass on the grid")
    rho = np.exp(log_rho - top)
    mass = coords.integrate(rho)
    return rho / mass, top + math.log(mass)


# ---------------------------------------------------------------------------------------
# built-in kinds
# ---------------------------------------------------------------------------------------
class Gaussian(InitialKind):
    name = "gaussian"
    doc = ("Gaussian law; on radial grids theta ~ N(0, std^2 I_d) and the field is the density "
           "of r = |theta| (scaled chi_d law)")
    params = (
        Param("mean", Numeric(max_rank=1), 0.0, "mean (a number, or one per axis; 0 on radial axes)"),
        Param("cov", Numeric(max_rank=2), None, "covariance matrix (instead of std)"),
        Param("std", Numeric(max_rank=1, positive=True),
              lambda p: None if "cov" in p else 1.0, "standard deviation (a number, or one per axis)",
              when=When("cov is not given", lambda p: "cov" not in p), default_doc="1.0"),
    )
    main_key = "mean"
    is_law = True

    def log_density(self, params, ctx):
        with np.errstate(all="ignore"):
            out = gaussian_log_cell_averages(ctx.coords, params["mean"], params.get("std"),
                                             params.get("cov"))
        if np.any(np.isnan(out)):
            key = "initial.cov" if "cov" in params else "initial.std"
            raise ConfigError(key, "the Gaussian's cell averages are not finite on this grid: its width "
                                   "is out of range for the cells")
        return out


class Uniform(InitialKind):
    name = "uniform"
    doc = ("uniform law on a box (default the whole domain); on radial grids uniform on the "
           "shell bounds[0] <= |theta| <= bounds[1] of R^d")
    params = (
        Param("bounds", Bounds(), None, "[lo, hi] (1D) or [[lo, hi], [lo, hi]] (2D)",
              default_doc="the whole domain"),
    )
    main_key = "bounds"
    is_law = True

    def log_density(self, params, ctx):
        coords = ctx.coords
        if "bounds" in params:
            b = np.asarray(Bounds().check(params["bounds"], "initial.bounds"))
            if b.shape != (coords.ndim, 2):
                raise ConfigError("initial.bounds", f"needs {coords.ndim} pair(s) [lo, hi], "
                                                    f"got {params['bounds']}")
        else:
            b = np.array([[a.lower, a.upper] for a in coords.axes])
        parts = [_uniform_axis(a, *b[k]) for k, a in enumerate(coords.axes)]
        return _outer_sum(parts)


class Mixture(InitialKind):
    name = "mixture"
    doc = "weighted sum of Gaussians sum_k w_k N(means[k], std[k]^2)"
    params = (
        Param("means", ListOf(Numeric(max_rank=1)), REQUIRED, "component means (numbers or per-axis lists)"),
        Param("std", ListOf(Real(low=0, low_open=True), scalar_ok=True), [1.0],
              "isotropic standard deviation, shared by all components or one per component"),
        Param("weights", ListOf(Real(low=0, low_open=True)), None, "component weights",
              default_doc="equal"),
    )
    main_key = "means"
    is_law = True

    def log_density(self, params, ctx):
        means = params["means"]
        k = len(means)
        stds = params["std"] * k if len(params["std"]) == 1 else params["std"]
        weights = params.get("weights", [1.0] * k)
        if len(stds) != k:
            raise ConfigError("initial.std", f"needs 1 or {k} entries (one per component), got {len(stds)}")
        if len(weights) != k:
            raise ConfigError("initial.weights", f"needs {k} entries (one per component), got {len(weights)}")
        w = np.asarray(weights, dtype=float) / max(weights)  # no overflow of the sum
        w = w / np.sum(w)
        parts = [math.log(w[j]) + gaussian_log_cell_averages(ctx.coords, means[j], stds[j])
                 for j in range(k)]
        return logsumexp(np.stack(parts), axis=0)


class ExpressionDensity(InitialKind):
    name = "expression"
    doc = "non-negative expression in the axis names (on radial grids: the density of r)"
    params = (Param("expression", Expression("an expression in the axis names"), REQUIRED, "the (unnormalised) density"),)
    main_key = "expression"

    def log_density(self, params, ctx):
        coords = ctx.coords
        with config_key("initial.expression"):
            f = compile_expression(params["expression"], coords.names)
        nodes, w = coords.quadrature_nodes(_GL_ORDER)
        with np.errstate(all="ignore"):
            vals = f(*(nodes[..., k] for k in range(coords.ndim)))
        if not np.all(np.isfinite(vals)):
            raise ConfigError("initial.expression", "initial density is not finite on the grid")
        if np.any(vals < 0):
            idx = np.unravel_index(np.argmin(vals), vals.shape)
            where = ", ".join(f"{n}={v:.4g}" for n, v in zip(coords.names, nodes[idx]))
            raise ConfigError("initial.expression",
                              f"initial density is negative (min {vals[idx]:.4g} at {where})")
        with np.errstate(divide="ignore"):
            return np.log(vals @ w)


INITIAL_KINDS: dict[str, InitialKind] = {k.name: k for k in (Gaussian(), Uniform(), Mixture(),
                                                            ExpressionDensity())}
"""Generic initial laws by name."""


# ---------------------------------------------------------------------------------------
# config section
# ---------------------------------------------------------------------------------------
def _all_kinds(extra: Mapping[str, InitialKind] | None) -> dict[str, InitialKind]:
    kinds = dict(INITIAL_KINDS)
    kinds.update(extra or {})
    return kinds


def resolve_initial(raw: Mapping[str, Any], extra_kinds: Mapping[str, InitialKind] | None = None,
                    default_kind: str = "gaussian") -> dict[str, Any]:
    """Validate the ``[initial]`` section: ``kind`` (default ``default_kind``) and that
    kind's parameters."""
    if not isinstance(raw, Mapping):
        raise ConfigError("initial", f"must be a table of keys, got {raw!r}")
    kinds = _all_kinds(extra_kinds)
    kind = Choice(tuple(kinds)).check(raw.get("kind", default_kind), "initial.kind")
    rest = {k: v for k, v in raw.items() if k != "kind"}
    return {"kind": kind, **resolve_table(rest, kinds[kind].params, "initial", what=f"kind {kind!r}")}


def initial_density(spec: Mapping[str, Any], ctx: InitialContext,
                    extra_kinds: Mapping[str, InitialKind] | None = None) -> InitialDensity:
    """Cell averages of the resolved ``[initial]`` section ``spec`` on ``ctx.coords``,
    normalised to mass one. For a probability law, less than :data:`MIN_MASS_ON_GRID`
    of its mass on the grid is an error, and a visible deficit (> 1e-3) a warning (the
    density is renormalised)."""
    kind = _all_kinds(extra_kinds)[spec["kind"]]
    params = {k: v for k, v in spec.items() if k != "kind"}
    log_rho = kind.log_density(params, ctx)
    rho, log_mass = normalise_log_density(log_rho, ctx.coords, f"initial.{kind.main_key}")
    if not kind.is_law:
        return InitialDensity(rho)
    mass = math.exp(min(log_mass, 700.0))
    if mass < MIN_MASS_ON_GRID:
        raise ConfigError(f"initial.{kind.main_key}",
                          f"only {mass:.3g} of the initial law lies on the grid (need at least "
                          f"{MIN_MASS_ON_GRID:g}); move it or enlarge the grid")
    if abs(mass - 1.0) > 1e-3:
        warnings.warn(f"initial law {kind.name!r}: only {mass:.4g} of its mass lies on the grid; "
                      "it was renormalised (enlarge the grid?)", stacklevel=2)
    return InitialDensity(rho, mass)


def describe_kinds(extra_kinds: Mapping[str, InitialKind] | None = None) -> str:
    """Listing of the initial kinds and their parameters."""
    blocks = []
    for name, kind in _all_kinds(extra_kinds).items():
        blocks.append(f"{name}: {kind.doc}\n" + format_table(kind.params, "    "))
    return "\n".join(blocks)
