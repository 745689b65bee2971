"""The ``[steady]`` section of ``ddsolve steady``: Newton, deflation and continuation
settings, with their defaults (Farrell et al.'s p = 2, shift = 1 for deflation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddsolve.schema import (
    Boolean,
    Choice,
    ConfigError,
    FilePath,
    Integer,
    Param,
    Real,
    format_table,
    resolve_table,
)
from ddsolve.steady.selfconsistency import REPRESENTATIONS

__all__ = ["STEADY_PARAMS", "resolve_steady", "describe_steady", "parse_continue"]

STEADY_PARAMS: tuple[Param, ...] = (
    Param("out", FilePath(), "runs/steady", "output directory"),
    Param("representation", Choice(REPRESENTATIONS), "auto",
          "Newton unknowns: separable (rank-r coefficients), dense (potential on the grid, "
          "dense Jacobian) or matrix-free (GMRES); auto picks from the interaction"),
    Param("tol", Real(low=0, low_open=True), 1e-12, "Newton tolerance (max-norm residual, relative)"),
    Param("max_iter", Integer(low=1), 100, "Newton iteration cap per guess"),
    Param("guesses", Integer(low=0), 8, "randomised restarts of deflation (besides the Gibbs state of V, "
                                        "the soft-mode perturbations and the [initial] density)"),
    Param("seed", Integer(low=0), 0, "seed of the randomised restarts"),
    Param("deflation_power", Real(low=0, low_open=True), 2.0, "p in M(u) = prod (1/|u - u_k|^p + shift)"),
    Param("deflation_shift", Real(low=0), 1.0, "shift in the deflation operator"),
    Param("use_initial", Boolean(), True, "also start from the [initial] density"),
    Param("eigenvalues", Integer(low=1), 4, "smallest stability eigenvalues reported per state"),
    Param("ds", Real(low=0, low_open=True), 0.02, "initial continuation step (arclength)"),
    Param("ds_min", Real(low=0, low_open=True), 1e-6, "smallest continuation step"),
    Param("ds_max", Real(low=0, low_open=True), 0.2, "largest continuation step"),
    Param("max_points", Integer(low=2), 400, "points per branch"),
    Param("locate_tol", Real(low=0, low_open=True), 1e-9,
          "relative bracket width of located folds and branch points"),
    Param("switch", Integer(low=0), 2, "depth of automatic branch switching at branch points"),
    Param("t_max", Real(low=0, low_open=True), 1000.0,
          "beta = inf: longest time-stepping to stationarity"),
    Param("dissipation_tol", Real(low=0, low_open=True), 1e-10,
          "beta = inf: stop when the dissipation per unit mass is below this"),
    Param("change_tol", Real(low=0, low_open=True), 1e-8,
          "beta = inf: ... and the L1 change of rho per unit time is below this"),
)


def resolve_steady(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``[steady]`` and fill in defaults."""
    out = resolve_table(dict(raw or {}), STEADY_PARAMS, "steady")
    if out["ds_min"] > out["ds"] or out["ds"] > out["ds_max"]:
        raise ConfigError("steady.ds", f"must satisfy ds_min <= ds <= ds_max, got "
                                       f"{out['ds_min']} <= {out['ds']} <= {out['ds_max']}")
    return out


def describe_steady() -> str:
    return "[steady]\n" + format_table(STEADY_PARAMS, "  ")


def parse_continue(text: str) -> tuple[str, float, float]:
    """``KEY=START:STOP`` -> (key, start, stop)."""
    key, eq, rng = text.partition("=")
    start, colon, stop = rng.partition(":")
    try:
        if not (eq and colon and key.strip()):
            raise ValueError
        a, b = float(start), float(stop)
    except ValueError:
        raise ConfigError("--continue", f"must be KEY=START:STOP with numbers, e.g. model.beta=1.0:4.0; "
                                        f"got {text!r}") from None
    if a == b:
        raise ConfigError("--continue", f"START and STOP must differ, got {text!r}")
    if not key.startswith("model."):
        raise ConfigError("--continue", f"continues a numeric [model] key (model.beta, model.theta, ...), "
                                        f"got {key!r}")
    return key.strip(), a, b
