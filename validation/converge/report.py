"""The files of a convergence study: ``convergence.csv``, ``convergence.md`` and
``convergence.png`` (error against h, log-log, with the least-squares order)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from ddsolve import orders

__all__ = ["CONVERGENCE_CSV", "CONVERGENCE_MD", "CONVERGENCE_FIGURE", "write_study"]

CONVERGENCE_CSV = "convergence.csv"
CONVERGENCE_MD = "convergence.md"
CONVERGENCE_FIGURE = "convergence.png"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, key: str, rows) -> None:
    columns = ["quantity", key, *orders.ORDER_COLUMNS[1:]]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and not math.isfinite(r[k]) else r[k]) for k in columns})
    os.replace(tmp, path)


def write_figure(path: Path, study) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    names = list(dict.fromkeys(r["quantity"] for r in study.rows))
    for name in names:
        pts = [(r["h"], r["error"]) for r in study.rows
               if r["quantity"] == name and r[study.key] != "richardson"
               and np.isfinite(r["error"]) and r["error"] > 0]
        if len(pts) < 2:
            continue
        h, e = map(np.array, zip(*pts))
        try:
            label = f"{name} (order {orders.power_fit(h, e).slope:.2f})"
        except ValueError:
            label = name
        ax.loglog(h, e, "o-", label=label)
    ax.set_xlabel(f"h ({study.key})")
    ax.set_ylabel("error" if study.error_mode == "exact" else "|successive difference|")
    ax.set_title(study.exact_description or "self-convergence")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def write_study(out_dir: str | Path, study, config_path: str | None = None) -> dict[str, Path]:
    """Write the three files; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / CONVERGENCE_CSV, "md": out / CONVERGENCE_MD, "figure": out / CONVERGENCE_FIGURE}
    write_csv(paths["csv"], study.key, study.rows)
    head = [f"# Convergence in {study.key}", ""]
    if config_path:
        head.append(f"config `{config_path}`, command `{study.command}`, runs in `runs/`.")
    head.append("Errors: " + (study.exact_description if study.error_mode == "exact"
                              else "successive differences (self-convergence); the density's are L1 "
                                   "distances after conservative restriction") + ".")
    head.append("")
    head += [f"- {n}" for n in study.notes]
    _atomic_text(paths["md"], "\n".join(head) + "\n\n" + orders.markdown_order_table(study.key, study.rows))
    try:
        write_figure(paths["figure"], study)
    except Exception as err:  # noqa: BLE001 - a figure must not lose the tables
        paths.pop("figure")
        study.notes.append(f"figure not written: {err}")
    return paths
