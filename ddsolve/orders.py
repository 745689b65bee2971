r"""Observed orders of convergence, Richardson extrapolation and power-law fits.

For a quantity with :math:`q_h = q + C h^p + o(h^p)`:

- against an exact value, :math:`e_k = |q_{h_k} - q|` and the observed order is
  :math:`p_k = \log(e_{k-1}/e_k)/\log(h_{k-1}/h_k)`;
- without one, the successive differences :math:`d_k = |q_{h_{k+1}} - q_{h_k}|` behave like
  :math:`C'h_k^p` when the ratios :math:`h_k/h_{k+1}` are constant, so the same formula on
  :math:`d_k` gives :math:`p` (self-convergence), and the Richardson value
  :math:`q_{h_K} + (q_{h_K} - q_{h_{K-1}})/(r^p - 1)`, :math:`r = h_{K-1}/h_K`, estimates
  :math:`q` (Richardson 1911; Roache, *Verification and Validation in Computational Science
  and Engineering*, 1998, §5.4).

:func:`power_fit` fits :math:`\log y = a + s\log x` by least squares and gives the slope's
confidence interval from the t-distribution of the residuals (the slope of an error against
:math:`h`, of a Wasserstein distance against :math:`N`, of a risk gap against :math:`N`).

Examples
--------
>>> import numpy as np
>>> h = np.array([0.1, 0.05, 0.025])
>>> np.round(observed_orders(h, 3 * h**2), 12)
array([2., 2.])
>>> fit = power_fit([100, 400, 1600], [0.1, 0.05, 0.025])
>>> round(fit.slope, 12)
-0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["observed_orders", "richardson", "PowerFit", "power_fit", "order_table", "format_order_table",
           "markdown_order_table", "ORDER_COLUMNS"]

ORDER_COLUMNS = ("quantity", "h", "value", "error", "error_kind", "order")
"""The columns of an order table (plus the refined parameter's own, after ``quantity``)."""


def observed_orders(hs: Sequence[float], errors: Sequence[float]) -> np.ndarray:
    """Successive observed orders :math:`\\log(e_{k-1}/e_k)/\\log(h_{k-1}/h_k)`, shape
    ``(len(hs) - 1,)``; NaN where an error is zero or not finite."""
    hs, errors = np.asarray(hs, float), np.asarray(errors, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.log(errors[:-1] / errors[1:]) / np.log(hs[:-1] / hs[1:])
    return np.where(np.isfinite(p), p, np.nan)


def richardson(q_coarse: float, q_fine: float, ratio: float, order: float) -> float:
    """Richardson extrapolation from two values on spacings with ``ratio`` = h_coarse/h_fine."""
    return q_fine + (q_fine - q_coarse) / (ratio**order - 1.0)


@dataclass(frozen=True)
class PowerFit:
    """Least-squares fit :math:`y \\approx e^{a} x^{s}` with a confidence interval for ``s``."""

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    points: int

    def __str__(self) -> str:
        if not math.isfinite(self.ci_low):
            return f"{self.slope:.3f}"
        return f"{self.slope:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def power_fit(x: Sequence[float], y: Sequence[float], level: float = 0.95,
              weights: Sequence[float] | None = None) -> PowerFit:
    r"""Fit :math:`\log y = a + s\log x`; the ``level`` confidence interval of :math:`s` is
    :math:`\hat s \pm t_{n-2}\,\hat\sigma/\sqrt{\sum(\log x_i - \overline{\log x})^2}` (NaN for
    two points). Points with non-positive or non-finite ``y`` are dropped.

    Parameters
    ----------
    x, y : sequences of positive floats, same length
    level : float in (0, 1)
    weights : optional per-point weights (e.g. numbers of seeds)
    """
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = lx.size
    if n < 2:
        raise ValueError(f"a power law needs at least 2 positive points, got {n}")
    w = np.ones(n) if weights is None else np.asarray(weights, float)[ok]
    w = w * (n / np.sum(w))  # normalised to mean 1: unweighted when all are equal
    xm, ym = np.average(lx, weights=w), np.average(ly, weights=w)
    sxx = float(np.sum(w * (lx - xm) ** 2))
    if sxx <= 0:
        raise ValueError("a power law needs at least 2 distinct x")
    s = float(np.sum(w * (lx - xm) * (ly - ym)) / sxx)
    a = float(ym - s * xm)
    if n > 2:
        sigma2 = float(np.sum(w * (ly - a - s * lx) ** 2) / (n - 2))
        half = float(stats.t.ppf(0.5 + level / 2, n - 2)) * math.sqrt(sigma2 / sxx)
        return PowerFit(s, a, s - half, s + half, level, n)
    return PowerFit(s, a, math.nan, math.nan, level, n)


def order_table(param: str, values: Sequence[Any], hs: Sequence[float],
                answers: Sequence[Mapping[str, float]],
                exact: Mapping[str, float] | None = None,
                errors: Mapping[str, Sequence[float]] | None = None) -> list[dict[str, Any]]:
    """Order-table rows ``quantity, <param>, h, value, error, error_kind, order``.

    Parameters
    ----------
    param : str
        The refined config key (its values go in a column of that name).
    values : sequence
        The key's values, coarse to fine.
    hs : sequence of float
        The mesh size (or step) of each value.
    answers : sequence of mappings
        The scalar answers of each run, by name.
    exact : mapping, optional
        Exact values: the error of those answers is ``|q - exact|`` (``error_kind`` "exact").
    errors : mapping of sequences, optional
        Errors computed elsewhere (e.g. a density's L1 distance to the exact solution, or to
        the next finer run after restriction); ``answers`` gives no value for them.

    Every other answer gets the successive difference ``|q_{k+1} - q_k|`` (``error_kind``
    "difference", NaN on the finest) and a ``richardson`` row with the extrapolated value.
    """
    exact = exact or {}
    errors = errors or {}
    hs = [float(h) for h in hs]
    rows: list[dict[str, Any]] = []
    names = sorted({k for a in answers for k in a} | set(errors), key=lambda k: (k.split("_")[0], k))
    for name in names:
        if name in errors:
            err = np.asarray(errors[name], float)
            q = np.array([a.get(name, math.nan) for a in answers])
            kind = "exact" if name in exact else "difference"
        else:
            q = np.array([a.get(name, math.nan) for a in answers])
            if name in exact:
                err, kind = np.abs(q - exact[name]), "exact"
            else:
                err, kind = np.append(np.abs(np.diff(q)), math.nan), "difference"
        order = np.concatenate([[math.nan], observed_orders(hs, err)])
        if kind == "difference":  # d_k pairs with h_k: the order from (d_{k-1}, d_k) belongs to row k
            order = np.concatenate([[math.nan], observed_orders(hs[:-1], err[:-1]), [math.nan]]) \
                if len(hs) > 1 else order
        for k in range(len(hs)):
            rows.append({"quantity": name, param: values[k], "h": hs[k], "value": q[k],
                         "error": err[k], "error_kind": kind, "order": order[k]})
        if kind == "difference" and np.isfinite(q).all() and len(q) >= 3:
            p_obs = next((o for o in reversed(order) if np.isfinite(o) and o > 0), math.nan)
            if np.isfinite(p_obs):
                rows.append({"quantity": name, param: "richardson", "h": 0.0,
                             "value": richardson(q[-2], q[-1], hs[-2] / hs[-1], p_obs),
                             "error": math.nan, "error_kind": "", "order": p_obs})
    return rows


def _fmt(v: float, spec: str) -> str:
    return "" if not isinstance(v, (int, float)) or not np.isfinite(v) else format(v, spec)


def format_order_table(param: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The order table as aligned text."""
    lines = [f"{'quantity':<18} {param:>14} {'h':>10} {'value':>20} {'error':>10} {'order':>6}"]
    for r in rows:
        value = _fmt(r["value"], ".12g")
        lines.append(f"{r['quantity']:<18} {str(r[param]):>14} {_fmt(r['h'], '.4g'):>10} {value:>20} "
                     f"{_fmt(r['error'], '.3e'):>10} {_fmt(r['order'], '.2f'):>6}")
    return "\n".join(lines)


def markdown_order_table(param: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The order table as a Markdown table, one section per quantity, with the
    least-squares order over all points (and its 95% interval where there are three or more)."""
    out = []
    for name in dict.fromkeys(r["quantity"] for r in rows):
        mine = [r for r in rows if r["quantity"] == name]
        kind = next((r["error_kind"] for r in mine if r["error_kind"]), "")
        what = "error against the exact solution" if kind == "exact" else "successive differences |q(k+1) - q(k)|"
        out.append(f"### {name}\n\n{what}\n\n| {param} | h | value | error | order |\n|---|---|---|---|---|")
        pts = [(r["h"], r["error"]) for r in mine if r[param] != "richardson"]
        for r in mine:
            out.append(f"| {r[param]} | {_fmt(r['h'], '.4g')} | {_fmt(r['value'], '.12g')} | "
                       f"{_fmt(r['error'], '.3e')} | {_fmt(r['order'], '.2f')} |")
        try:
            fit = power_fit(*zip(*pts))
            out.append(f"\nleast-squares order over {fit.points} points: {fit}"
                       + (" (95% interval)" if math.isfinite(fit.ci_low) else ""))
        except (ValueError, TypeError):
            pass
        out.append("")
    return "\n".join(out)
