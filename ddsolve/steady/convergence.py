r"""How the answers of ``ddsolve steady`` converge as a config key is refined
(``--param grid.cells=100,200,400,800``): the located branch points and folds, and the
free energy of every state, as order tables.

The errors are successive differences and the orders and Richardson values those of
:mod:`ddsolve.orders`; ``ddsolve converge --command steady`` runs the same study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve import orders
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
    """:func:`ddsolve.orders.order_table` with ``h`` = 1/cells for ``grid.cells`` (the
    geometric mean over axes) and the value itself for any other key."""
    hs = [(_spacing(v) if param.endswith("cells") else float(np.atleast_1d(v)[0])) for v in values]
    return orders.order_table(param, values, hs, answers, exact)


def format_table(param: str, rows: Sequence[Mapping[str, Any]]) -> str:
    return orders.format_order_table(param, rows)


def write_convergence(out: str | Path, rows: Sequence[Mapping[str, Any]], param: str) -> Path:
    path = Path(out) / CONVERGENCE_FILE
    write_rows(path, rows, first=("quantity", param, *orders.ORDER_COLUMNS[1:]))
    return path
