r"""How the answers of ``ddsolve steady`` converge as a config key is refined
(``--param grid.cells=100,200,400,800``): the located branch points and folds, and the
free energy of every state, as order tables.

Without an exact value the error of :math:`q_h` is estimated from successive differences
:math:`d_k = q_{h_{k+1}} - q_{h_k}`; for :math:`q_h = q + Ch^p + o(h^p)` the observed order
is :math:`p_k = \log(d_{k-1}/d_k)/\log(h_{k}/h_{k+1})` and the Richardson value
:math:`q_{h_K} + d_{K-1}/((h_{K-1}/h_K)^{p} - 1)` (Richardson 1911; Roache, *Verification
and Validation in Computational Science*, 1998, §5.4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve.steady.outputs import CONVERGENCE_FILE, write_rows

__all__ = ["quantities", "order_table", "format_table", "write_convergence"]


def quantities(result, key: str | None) -> dict[str, float]:
    """The scalar answers of one ``steady`` result: ``<kind>_<i>`` for the special
    points in order of the parameter, ``free_energy_<i>`` for the states in order of
    free energy."""
    q: dict[str, float] = {}
    for kind in ("branch-point", "fold"):
        pts = sorted(s[key] for s in result.special if s["kind"] == kind) if key else []
        for i, p in enumerate(pts):
            q[f"{kind}_{i}"] = float(p)
    for i, row in enumerate(result.states):
        q[f"free_energy_{i}"] = float(row["free_energy"])
    return q


def _spacing(value: Any) -> float:
    v = np.atleast_1d(np.asarray(value, dtype=float))
    return float(1.0 / np.prod(v) ** (1.0 / v.size))


def order_table(param: str, values: Sequence[Any], answers: Sequence[Mapping[str, float]],
                exact: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Rows ``quantity, <param>, h, value, error, order`` (``error`` against ``exact``
    where given, else the successive difference; ``h`` is 1/cells for ``grid.cells``,
    the value itself otherwise), plus a ``richardson`` row per quantity."""
    names = sorted({k for a in answers for k in a}, key=lambda k: (k.split("_")[0], k))
    hs = [(_spacing(v) if param.endswith("cells") else float(np.atleast_1d(v)[0])) for v in values]
    rows = []
    for name in names:
        q = np.array([a.get(name, math.nan) for a in answers])
        if exact and name in exact:
            err = np.abs(q - exact[name])
        else:
            err = np.append(np.abs(np.diff(q)), math.nan)
        order = [math.nan] + [
            math.log(err[k - 1] / err[k]) / math.log(hs[k - 1] / hs[k])
            if err[k] > 0 and err[k - 1] > 0 and np.isfinite(err[k] + err[k - 1]) else math.nan
            for k in range(1, len(q))]
        for k in range(len(q)):
            rows.append({"quantity": name, param: values[k], "h": hs[k], "value": q[k],
                         "error": err[k], "error_kind": "exact" if exact and name in exact else "difference",
                         "order": order[k]})
        p_obs = next((o for o in reversed(order) if np.isfinite(o) and o > 0), math.nan)
        if len(q) >= 2 and np.isfinite(p_obs):
            ratio = hs[-2] / hs[-1]
            rich = q[-1] + (q[-1] - q[-2]) / (ratio ** p_obs - 1)
            rows.append({"quantity": name, param: "richardson", "h": 0.0, "value": rich,
                         "error": math.nan, "error_kind": "", "order": p_obs})
    return rows


def format_table(param: str, rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'quantity':<18} {param:>14} {'value':>20} {'error':>10} {'order':>6}"]
    for r in rows:
        err = "" if not np.isfinite(r["error"]) else f"{r['error']:.3e}"
        order = "" if not np.isfinite(r["order"]) else f"{r['order']:.2f}"
        lines.append(f"{r['quantity']:<18} {str(r[param]):>14} {r['value']:>20.12g} {err:>10} {order:>6}")
    return "\n".join(lines)


def write_convergence(out: str | Path, rows: Sequence[Mapping[str, Any]], param: str) -> Path:
    path = Path(out) / CONVERGENCE_FILE
    write_rows(path, rows, first=("quantity", param, "h", "value", "error", "error_kind", "order"))
    return path
