"""The report directory of ``ddsolve validate``.

=========================== ==========================================================
``report.md``               tables of the metrics per N and time (seed mean ± sd, the
                            sampling floor beside each distance), bias and spread of
                            every gap, the fitted powers of N, pass/fail of the checks
``metrics.csv``             long form: ``n, seed, t, metric, value``
``summary.csv``             per ``metric, n, t``: ``mean, sd, se, count``
``density_particles.png``   PDE density against the particle histogram (largest N)
``curves.png``              risk (or energy) and the first mean against t: PDE line,
                            particle median with the min-max band over seeds, per N
``scaling.png``             distances and |bias| against N, log-log, fitted slope,
                            sampling floor dashed
``pde/``, ``particles/``    the runs, each a complete output directory
=========================== ==========================================================
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["write_report", "REPORT_FILE", "METRICS_FILE"]

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.csv"


def _write_csv(path: Path, rows, columns) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _g(v, spec=".4g") -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _cell(s) -> str:
    if s is None:
        return ""
    return _g(s["mean"]) + (f" ± {_g(s['sd'], '.2g')}" if math.isfinite(s["sd"]) else "")


def _markdown(v) -> str:
    lines = [f"# Particles vs PDE: {v.kind} comparison", ""]
    part = v.config.get("particles", {})
    lines.append(f"PDE in `pde/`; particle method `{part.get('method', 'mean-field')}` for N = "
                 f"{', '.join(map(str, v.ns))}, seeds {', '.join(map(str, v.seeds))}, in `particles/`. "
                 f"Comparison times {', '.join(f'{t:g}' for t in v.times)}. Each cell: seed mean ± standard "
                 "deviation; `floor` is the same metric for N i.i.d. samples of the PDE density.")
    lines.append("")
    by = {(s["metric"], s["n"], s["t"]): s for s in v.summary}
    metrics = list(dict.fromkeys(r["metric"] for r in v.rows))
    distances = [m for m in metrics if not m.endswith(("_pde", "_particles", "_gap", "_floor"))]
    gaps = [m for m in metrics if m.endswith("_gap")]
    tcols = list(v.times) + (["stationary"] if v.settings.get("stationary_after") is not None else [])
    head = "| N | " + " | ".join(f"t = {t:g}" if t != "stationary" else "stationary" for t in tcols) + " |"
    sep = "|---" * (len(tcols) + 1) + "|"
    for m in distances:
        lines += [f"## {m}", "", head, sep]
        for n in v.ns:
            cells = []
            for t in tcols:
                c = _cell(by.get((m, n, t)))
                fl = by.get((f"{m}_floor", n, t))
                cells.append(c + (f" (floor {_g(fl['mean'])})" if fl else ""))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    if gaps:
        lines += ["## Gaps, particles minus PDE: bias ± spread over seeds", "",
                  "| quantity | N | " + " | ".join(f"t = {t:g}" if t != "stationary" else "stationary"
                                                    for t in tcols) + " |",
                  "|---" * (len(tcols) + 2) + "|"]
        for m in gaps:
            for n in v.ns:
                lines.append(f"| {m[:-4]} | {n} | " + " | ".join(_cell(by.get((m, n, t))) for t in tcols) + " |")
        lines.append("")
    if v.slopes:
        lines += ["## Powers of N", "", "Least-squares fit of log(seed mean) (|bias| for gaps) against log N, "
                  "95% interval from the t-distribution of the residuals (none with two N).", "",
                  "| metric | t | slope | 95% interval | prefactor |", "|---|---|---|---|---|"]
        for s in v.slopes:
            if s["metric"].endswith("_floor") and s["t"] != "stationary" and s["t"] != max(v.times):
                continue
            ci = f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if math.isfinite(s["ci_low"]) else ""
            t = s["t"] if s["t"] == "stationary" else f"{s['t']:g}"
            lines.append(f"| {s['metric']} ({s['quantity']}) | {t} | {s['slope']:.3f} | {ci} | {s['prefactor']:.4g} |")
        lines.append("")
    lines += ["## Checks", ""]
    if not v.results:
        lines.append("No tolerances given (`[validate.tolerance]`, `[validate.slope]`).")
    for r in v.results:
        lines.append(f"- **{'PASS' if r['passed'] else 'FAIL'}** {r['check']}: {_g(r['value'])} ({r['where']})")
    lines.append("")
    return "\n".join(lines)


def _figures(v, out: Path) -> list[str]:
    from matplotlib.figure import Figure

    written = []
    coords = v.figure_data["coords"]
    # density against the particle histogram
    times = list(v.figure_data["points"])
    show = [times[i] for i in np.unique(np.linspace(0, len(times) - 1, min(4, len(times))).astype(int))]
    fig = Figure(figsize=(3.2 * len(show), 3.0 * coords.ndim), layout="constrained")
    for j, t in enumerate(show):
        pts = v.figure_data["points"][t]
        rho = v.figure_data["densities"][t]
        for k, a in enumerate(coords.axes):
            ax = fig.add_subplot(coords.ndim, len(show), k * len(show) + j + 1)
            from ..metrics import marginal

            dens = marginal(coords, rho, k) / a.spacing
            ax.stairs(dens, a.edges, color="k", label="PDE")
            ax.hist(pts[:, k], bins=v.settings["histogram_bins"], range=(a.lower, a.upper), density=True,
                    alpha=0.45, color="C0", label=f"N = {max(v.ns)}")
            ax.set_title(f"t = {t:g}", fontsize=9)
            ax.set_xlabel(a.name)
            if j == 0 and k == 0:
                ax.legend(fontsize=7)
    fig.savefig(out / "density_particles.png", dpi=100)
    written.append("density_particles.png")
    # curves
    pde = v.pde_diagnostics
    quantity = next((q for q in ("risk", "energy") if q in pde
                     and all(q in d for d in v.particle_diagnostics.values())), None)
    mean_q = f"mean_{coords.names[0]}"
    panels = [q for q in (quantity, mean_q) if q is not None]
    fig = Figure(figsize=(5.0 * len(panels), 3.6), layout="constrained")
    for j, q in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        ax.plot(pde["t"], pde[q], "k-", lw=1.5, label="PDE")
        for c, n in enumerate(v.ns):
            runs = [v.particle_diagnostics[(n, s)] for s in v.seeds]
            t = runs[0]["t"]
            ys = np.array([np.interp(t, r["t"], r[q]) for r in runs])
            ax.plot(t, np.median(ys, axis=0), color=f"C{c}", label=f"N = {n}")
            if len(runs) > 1:
                ax.fill_between(t, ys.min(axis=0), ys.max(axis=0), color=f"C{c}", alpha=0.2, lw=0)
        ax.set_xlabel("t")
        ax.set_ylabel(q)
        if q == "risk" and np.all(pde[q] > 0):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.savefig(out / "curves.png", dpi=100)
    written.append("curves.png")
    # scaling
    if len(v.ns) > 1:
        t_key = "stationary" if v.settings.get("stationary_after") is not None else max(v.times)
        by = {(s["metric"], s["n"], s["t"]): s for s in v.summary}
        fits = {s["metric"]: s for s in v.slopes if s["t"] == t_key}
        names = [m for m in fits if not m.endswith(("_floor", "_pde", "_particles"))]
        fig = Figure(figsize=(5.6, 4.2), layout="constrained")
        ax = fig.add_subplot()
        ns = np.array(v.ns, float)
        for c, m in enumerate(names):
            y = np.array([abs(by[(m, n, t_key)]["mean"]) for n in v.ns])
            f = fits[m]
            ci = f" [{f['ci_low']:.2f}, {f['ci_high']:.2f}]" if math.isfinite(f["ci_low"]) else ""
            ax.loglog(ns, y, "o", color=f"C{c}", label=f"{m}: slope {f['slope']:.2f}{ci}")
            ax.loglog(ns, f["prefactor"] * ns ** f["slope"], "-", color=f"C{c}", lw=0.8)
            if f"{m}_floor" in fits:
                yf = [by[(f"{m}_floor", n, t_key)]["mean"] for n in v.ns]
                ax.loglog(ns, yf, "--", color=f"C{c}", lw=0.8)
        ax.set_xlabel("N")
        ax.set_ylabel("metric (seed mean), |bias| for gaps")
        ax.set_title(f"t = {t_key}" + ("; dashed: sampling floor" if names else ""), fontsize=9)
        ax.legend(fontsize=6)
        fig.savefig(out / "scaling.png", dpi=100)
        written.append("scaling.png")
    return written


def write_report(v) -> dict[str, Path]:
    """Write the report files of a :class:`~validation.validate.study.Validation`."""
    out = v.out_dir
    _write_csv(out / METRICS_FILE, v.rows, ["n", "seed", "t", "metric", "value"])
    _write_csv(out / SUMMARY_FILE, v.summary, ["metric", "n", "t", "mean", "sd", "se", "count"])
    paths = {"report": out / REPORT_FILE, "metrics": out / METRICS_FILE}
    try:
        for name in _figures(v, out):
            paths[name] = out / name
    except Exception as err:  # noqa: BLE001 - a figure must not lose the tables
        v.results.append({"check": "figures", "value": math.nan, "where": f"not written: {err}", "passed": True})
    tmp = out / (REPORT_FILE + ".tmp")
    tmp.write_text(_markdown(v))
    os.replace(tmp, out / REPORT_FILE)
    return paths
