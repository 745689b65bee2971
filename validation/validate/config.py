"""The ``[validate]`` section of ``ddsolve validate``.

::

    [validate]
    n = [200, 800, 3200]          # particle numbers (--n overrides)
    seeds = 5                     # runs per N, particles.seed = seed + k (--seeds overrides)
    times = [0.0, 1.0, 5.0]       # comparison times (default: up to 6 of the PDE's saved times)
    stationary_after = 20.0       # pool the times >= this as draws of the stationary law
    floor_repeats = 0             # i.i.d. draws per (N, t) for the sampling floor (default: seeds)
    out = "runs/validate"
    [validate.tolerance]          # pass when the seed mean at the largest N is <= the value
    w1 = 0.02                     #   at every comparison time
    [validate.slope]              # pass when the fitted slope of the metric (or |bias|) vs N
    w1 = [-0.7, -0.3]             #   lies in [low, high]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddsolve.schema import (
    ConfigError,
    FilePath,
    Integer,
    ListOf,
    Param,
    Real,
    Text,
    format_table,
    resolve_table,
)

__all__ = ["VALIDATE_PARAMS", "resolve_validate", "describe_validate"]

VALIDATE_PARAMS: tuple[Param, ...] = (
    Param("n", ListOf(Integer(low=1), 1), None, "particle numbers N (default: [particles] n)"),
    Param("seeds", Integer(low=1), 3, "particle runs per N (seeds seed, seed + 1, ...)"),
    Param("seed", Integer(low=0), 0, "first particle seed"),
    Param("times", ListOf(Real(low=0), 1), None,
          "comparison times (default: up to 6 of the PDE's saved times, 0 and t_final included)"),
    Param("stationary_after", Real(low=0), None,
          "pool the comparison times >= this as draws of the stationary law (bias and spread per N)"),
    Param("floor_repeats", Integer(low=0), None, "i.i.d. samples per (N, t) for the sampling floor "
                                                 "(default: seeds; 0: no floor)"),
    Param("histogram_bins", Integer(low=2), 60, "bins of the particle histograms in the figure"),
    Param("out", FilePath(), "runs/validate", "output directory; --out overrides"),
    Param("tolerance", None, None, "table metric = max: pass when the seed mean at the largest N is "
                                   "at most max at every comparison time"),
    Param("slope", None, None, "table metric = [low, high]: pass when the fitted slope vs N is inside"),
)


def _check_number_table(raw: Any, key: str, pair: bool) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a table of metric = {'[low, high]' if pair else 'value'}, got {raw!r}")
    out = {}
    for name, value in raw.items():
        kind = ListOf(Real(), 2, 2) if pair else Real(low=0)
        v = kind.check(value, f"{key}.{name}")
        if pair and v[0] > v[1]:
            raise ConfigError(f"{key}.{name}", f"needs low <= high, got {v}")
        out[str(name)] = v
    return out


def resolve_validate(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``[validate]`` and fill in defaults (the metric names in ``tolerance`` and
    ``slope`` are checked against the computed metrics once they are known)."""
    raw = dict(raw or {})
    tol, slope = raw.pop("tolerance", None), raw.pop("slope", None)
    params = [p for p in VALIDATE_PARAMS if p.name not in ("tolerance", "slope")]
    out = resolve_table(raw, params, "validate")
    out["tolerance"] = _check_number_table(tol, "validate.tolerance", pair=False)
    out["slope"] = _check_number_table(slope, "validate.slope", pair=True)
    return out


def describe_validate() -> str:
    shown = [p if p.type is not None else Param(p.name, Text("a table"), None, p.doc) for p in VALIDATE_PARAMS]
    return "[validate]\n" + format_table(shown, "  ")
