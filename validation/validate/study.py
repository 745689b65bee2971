r"""Particles against the PDE: the study behind ``ddsolve validate``.

One config drives both sides: ``[model]``, ``[grid]``, ``[initial]``, ``[scheme]`` and
``[run]`` the PDE run, ``[particles]`` the particle method, ``[validate]`` the study
(:mod:`validation.validate.config`). The PDE runs once; the particle method runs for every
:math:`N` and seed, with its snapshots set to the comparison times (which must be saved
times of the PDE run). At each comparison time the particles (in the PDE's coordinates:
:math:`r = |w|` on radial grids) are compared with the PDE density by the metrics of
:mod:`validation.metrics`:

========================= ==============================================================
1D and radial grids       ``w1``, ``w2`` (exact, quantile form), ``ks``
periodic 1D grids         ``w1`` (exact, circle), ``w2`` (POT, circle)
2D grids                  ``sw2`` (sliced W2, POT), ``w1_<axis>`` of each marginal
every grid                ``mean_<axis>_pde``/``_particles``/``_gap``, ``m2_<axis>_...``
models with a risk        ``risk_pde``, ``risk_particles``, ``risk_gap``
models with an energy     ``energy_pde``, ``energy_particles``, ``energy_gap``
========================= ==============================================================

``<q>_gap`` is particles minus PDE. The *sampling floor* ``<metric>_floor`` is the same
metric for i.i.d. samples of size :math:`N` drawn from the PDE density at that time: what
exact samples score, so a distance at the floor means the particles are as close to the
PDE as :math:`N` points can be. Expected scalings, measured and not assumed: the
Wasserstein distances of :math:`N` i.i.d. points decay like :math:`N^{-1/2}` in 1D; the
risk gap of a two-layer network :math:`R_N - R` like :math:`1/N` (the :math:`i = j` terms of
the finite-N risk; Rotskoff & Vanden-Eijnden 2018, Mei, Montanari & Nguyen 2018, Thm 3).
Each gap is separated into its bias (seed mean) and spread (seed standard deviation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve import orders
from ddsolve.app.config import apply_overrides, resolve
from ddsolve.app.io import save_times
from ddsolve.app.results import load_run
from ddsolve.laws.moments import coordinate_moments
from ddsolve.schema import ConfigError

from .. import metrics as M
from .config import resolve_validate

__all__ = ["Validation", "validate", "expected_metrics", "snapshot_metrics", "summarise", "scaling", "checks"]

_SCALAR_DIAGNOSTICS = ("risk", "energy")


@dataclass
class Validation:
    """What :func:`validate` returns."""

    config: dict[str, Any]
    settings: dict[str, Any]
    out_dir: Path
    kind: str
    times: list[float]
    ns: list[int]
    seeds: list[int]
    rows: list[dict[str, Any]]
    pde_diagnostics: dict[str, np.ndarray]
    particle_diagnostics: dict[tuple[int, int], dict[str, np.ndarray]]
    figure_data: dict[str, Any] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)
    slopes: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.results)


def _kind(coords) -> str:
    if coords.ndim == 1:
        return "circle" if coords.periodic[0] else "line"
    if coords.ndim == 2:
        return "plane"
    raise ConfigError("grid", f"validate compares particles with densities on 1D and 2D grids, "
                              f"this grid has {coords.ndim} axes")


def snapshot_metrics(kind: str, coords, density: np.ndarray, points: np.ndarray,
                     seed: int = 0) -> dict[str, float]:
    """The distances between particles ``points`` (shape ``(N, ndim)``, PDE coordinates)
    and the density (cell averages) on ``coords`` (module doc)."""
    pts = np.asarray(points, float).reshape(-1, coords.ndim)
    if kind == "plane":
        out = {"sw2": M.wasserstein_2d(coords, density, pts, p=2, method="sliced", seed=seed)}
        for k, a in enumerate(coords.axes):
            out[f"w1_{a.name}"] = M.wasserstein(M.grid_law_from(coords, density, k), pts[:, k], 1)
        return out
    law = M.grid_law_from(coords, density)
    x = pts[:, 0]
    if kind == "circle":
        return {"w1": M.wasserstein_circle_w1(law, x), "w2": M.wasserstein_circle(law, x, p=2)}
    return {"w1": M.wasserstein(law, x, 1), "w2": M.wasserstein(law, x, 2), "ks": M.ks_distance(law, x)}


def _grid_moments(coords, rho: np.ndarray) -> dict[str, float]:
    """Moments of the piecewise-constant density: exact per 1D axis (a cell contributes
    its mass times (a^2 + ab + b^2)/3 to m2), not cell-centre sums (those are off by h^2/12)."""
    out = {}
    for k, a in enumerate(coords.axes):
        law = M.grid_law_from(coords, rho, k)
        out[f"mean_{a.name}"] = law.mean()
        out[f"m2_{a.name}"] = law.moment2()
    return out


def _sample_density(coords, density: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    from particles.runner import sample_cells

    return sample_cells(coords, np.maximum(density, 0.0) * 1.0, n, rng)


def _at(times: np.ndarray, t: float, what: str, key: str) -> int:
    i = int(np.argmin(np.abs(times - t)))
    if abs(times[i] - t) > 1e-9 * max(1.0, abs(t)):
        raise ConfigError(key, f"t = {t:g} is not a saved time of the {what} "
                               f"(nearest {times[i]:g}); choose times among them")
    return i


def _default_times(saved: np.ndarray) -> list[float]:
    if saved.size <= 6:
        return [float(t) for t in saved]
    idx = np.unique(np.round(np.linspace(0, saved.size - 1, 6)).astype(int))
    return [float(saved[i]) for i in idx]


def validate(raw: Mapping[str, Any], out_dir: str | Path | None = None, *, ns: Sequence[int] | None = None,
             seeds: int | None = None, progress=None) -> Validation:
    """Run the PDE and the particles of ``raw`` and compare them (module doc).

    Parameters
    ----------
    raw : mapping
        The config with ``[particles]`` (and optionally ``[validate]``).
    out_dir : path-like, optional
        Overrides ``[validate] out``. The PDE run goes to ``out/pde``, the particle runs
        to ``out/particles/n<N>-seed<S>``.
    ns, seeds : optional
        Override ``[validate] n`` and ``seeds``.
    progress : callable, optional
        Called with a one-line message after each run.
    """
    if "particles" not in raw:
        raise ConfigError("particles", "validate needs a [particles] section (the particle method to "
                                       "compare with the PDE)")
    settings = resolve_validate(raw.get("validate"))
    if ns is not None:
        settings["n"] = [int(n) for n in ns]
    if seeds is not None:
        settings["seeds"] = int(seeds)
    if out_dir is not None:
        settings["out"] = str(out_dir)
    out = Path(settings["out"])
    base = {k: v for k, v in raw.items() if k != "validate"}
    part_raw = dict(base["particles"])
    ns_ = settings.get("n") or [int(part_raw.get("n", 1000))]
    seed_list = [settings["seed"] + k for k in range(settings["seeds"])]
    resolved = resolve(base)
    t_final = float(resolved["run"]["t_final"])
    saved = save_times(t_final, resolved["run"]["save_every"])
    times = settings.get("times") or _default_times(saved)
    for t in times:
        _at(saved, t, "PDE run (multiples of run.save_every and t_final)", "validate.times")
    part_raw.pop("steps", None)
    part_raw.update(t_final=t_final, snapshots=[float(t) for t in times])
    base["particles"] = part_raw
    from particles.runner import build_dynamics

    for n in ns_:  # every particle config is checked before anything runs
        build_dynamics(apply_overrides(base, [("particles.n", n), ("particles.seed", seed_list[0])]))
    from ddsolve.app.config import build

    setup = build(resolved)
    _check_metric_names(settings, expected_metrics(_kind(setup.coords), setup.coords.names,
                                                   setup.model.has_risk))

    from ddsolve.app.runner import run

    say = progress or (lambda msg: None)
    pde = run(base, out / "pde", exists="overwrite")  # the study owns its subdirectories
    say(f"PDE: t = {t_final:g} in {pde.summary['wall_time']:.2f} s")
    pde_out = load_run(out / "pde")
    coords = pde.setup.coords
    kind = _kind(coords)
    pde_times = pde_out.times
    densities = {t: pde_out.density(_at(pde_times, t, "PDE run", "validate.times")) for t in times}
    pde_diag = pde_out.diagnostics
    pde_moments = {t: _grid_moments(coords, rho) for t, rho in densities.items()}
    names = coords.names

    rows: list[dict[str, Any]] = []

    def add(n, seed, t, metric, value):
        rows.append({"n": int(n), "seed": seed, "t": float(t), "metric": metric, "value": float(value)})

    from particles.runner import run_particles
    from particles.storage import load_particles

    part_diag: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    figure_points: dict[float, np.ndarray] = {}
    for n in ns_:
        for seed in seed_list:
            cfg = apply_overrides(base, [("particles.n", n), ("particles.seed", seed)])
            res = run_particles(cfg, out / "particles" / f"n{n}-seed{seed}", exists="overwrite")
            snaps = load_particles(res.out_dir)
            diag = {k: np.array([r[k] for r in res.rows], float) for k in res.rows[0]}
            part_diag[(n, seed)] = diag
            for t in times:
                i = _at(snaps.t, t, f"particle run (n = {n}, seed = {seed})", "validate.times")
                pts = snaps.coordinates[i]
                rho = densities[t]
                for metric, value in snapshot_metrics(kind, coords, rho, pts, seed).items():
                    add(n, seed, t, metric, value)
                p_moments = coordinate_moments(pts, names)
                j = _at(pde_diag["t"], t, "PDE diagnostics", "validate.times")
                jp = _at(diag["t"], t, "particle diagnostics", "validate.times")
                pairs = {k: (pde_moments[t][k], p_moments[k]) for k in p_moments}
                for q in _SCALAR_DIAGNOSTICS:
                    if q in pde_diag and q in diag:
                        pairs[q] = (pde_diag[q][j], diag[q][jp])
                for q, (a, b) in pairs.items():
                    add(n, seed, t, f"{q}_pde", a)
                    add(n, seed, t, f"{q}_particles", b)
                    add(n, seed, t, f"{q}_gap", b - a)
                if n == max(ns_) and seed == seed_list[0]:
                    figure_points[t] = pts
            say(f"particles: N = {n}, seed {seed}: {res.summary['wall_time']:.2f} s")
    floor_repeats = settings.get("floor_repeats")
    floor_repeats = len(seed_list) if floor_repeats is None else floor_repeats
    rng = np.random.default_rng(12345 + settings["seed"])
    for n in ns_:
        for t in times:
            for r in range(floor_repeats):
                pts = _sample_density(coords, densities[t], n, rng)
                for metric, value in snapshot_metrics(kind, coords, densities[t], pts, r).items():
                    add(n, r, t, f"{metric}_floor", value)
    result = Validation(dict(raw), settings, out, kind, [float(t) for t in times], list(ns_), seed_list, rows,
                        pde_diag, part_diag, {"coords": coords, "densities": densities, "points": figure_points})
    result.summary = summarise(rows, settings.get("stationary_after"))
    result.slopes = scaling(result.summary, list(ns_))
    result.results = checks(result, settings)
    return result


def expected_metrics(kind: str, names: Sequence[str], has_risk: bool) -> list[str]:
    """The metric names a study of this kind writes (module doc)."""
    dist = {"line": ["w1", "w2", "ks"], "circle": ["w1", "w2"],
            "plane": ["sw2"] + [f"w1_{a}" for a in names]}[kind]
    scalars = [f"{m}_{a}" for a in names for m in ("mean", "m2")] + ["energy"] + (["risk"] if has_risk else [])
    return (dist + [f"{d}_floor" for d in dist]
            + [f"{q}_{side}" for q in scalars for side in ("pde", "particles", "gap")])


def _check_metric_names(settings: Mapping[str, Any], known: Sequence[str]) -> None:
    for table in ("tolerance", "slope"):
        for name in settings[table]:
            if name not in known:
                raise ConfigError(f"validate.{table}.{name}", f"unknown metric; this study has "
                                                              f"{', '.join(_distance_metrics(known))}")


def _distance_metrics(names: Sequence[str]) -> list[str]:
    return [m for m in names if not m.endswith(("_pde", "_particles", "_floor"))]


def summarise(rows: Sequence[Mapping[str, Any]], stationary_after: float | None = None) -> list[dict[str, Any]]:
    """Per (metric, n, t): seed mean, standard deviation and count; with
    ``stationary_after``, also the pooled rows (``t = "stationary"``) over the times >= it."""
    groups: dict[tuple[str, int, Any], list[float]] = {}
    for r in rows:
        groups.setdefault((r["metric"], r["n"], r["t"]), []).append(r["value"])
        if stationary_after is not None and r["t"] >= stationary_after:
            groups.setdefault((r["metric"], r["n"], "stationary"), []).append(r["value"])
    out = []
    for (metric, n, t), vals in groups.items():
        v = np.asarray(vals, float)
        sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
        out.append({"metric": metric, "n": n, "t": t, "mean": float(v.mean()), "sd": sd, "count": int(v.size),
                    "se": sd / math.sqrt(v.size) if v.size > 1 else math.nan})
    return out


def scaling(summary: Sequence[Mapping[str, Any]], ns: Sequence[int]) -> list[dict[str, Any]]:
    """Fitted power of N of each distance (seed mean) and of each gap's bias
    (``|seed mean|``) at each time, with 95% intervals (NaN with two N)."""
    if len(set(ns)) < 2:
        return []
    by: dict[tuple[str, Any], dict[int, Mapping[str, Any]]] = {}
    for s in summary:
        by.setdefault((s["metric"], s["t"]), {})[s["n"]] = s
    out = []
    for (metric, t), per_n in sorted(by.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if metric.endswith(("_pde", "_particles")) or len(per_n) < 2:
            continue
        nn = sorted(per_n)
        y = np.array([abs(per_n[n]["mean"]) for n in nn])
        if np.any(y <= 0) or not np.all(np.isfinite(y)):
            continue
        fit = orders.power_fit(nn, y)
        out.append({"metric": metric, "t": t, "slope": fit.slope, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                    "prefactor": math.exp(fit.intercept), "points": fit.points,
                    "quantity": "|bias|" if metric.endswith("_gap") else "mean"})
    return out


def checks(result: Validation, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pass/fail results of ``[validate] tolerance`` and ``slope``."""
    metrics_known = sorted({r["metric"] for r in result.rows})
    pooled = settings.get("stationary_after") is not None
    n_max = max(result.ns)
    out = []
    for name, tol in settings["tolerance"].items():
        if name not in metrics_known:
            raise ConfigError(f"validate.tolerance.{name}", f"unknown metric; this study has "
                                                            f"{', '.join(_distance_metrics(metrics_known))}")
        rows = [s for s in result.summary if s["metric"] == name and s["n"] == n_max
                and ((s["t"] == "stationary") if pooled else s["t"] != "stationary")]
        worst = max(rows, key=lambda s: abs(s["mean"]))
        out.append({"check": f"{name} <= {tol:g} at N = {n_max}", "value": abs(worst["mean"]),
                    "where": f"t = {worst['t']}", "passed": bool(abs(worst["mean"]) <= tol)})
    for name, (lo, hi) in settings["slope"].items():
        if name not in metrics_known:
            raise ConfigError(f"validate.slope.{name}", f"unknown metric; this study has "
                                                        f"{', '.join(_distance_metrics(metrics_known))}")
        t_key = "stationary" if pooled else max(result.times)
        fit = next((s for s in result.slopes if s["metric"] == name and s["t"] == t_key), None)
        if fit is None:
            out.append({"check": f"slope of {name} in [{lo:g}, {hi:g}]", "value": math.nan,
                        "where": "needs two or more N", "passed": False})
            continue
        out.append({"check": f"slope of {name} in [{lo:g}, {hi:g}]", "value": fit["slope"],
                    "where": f"t = {t_key}, 95% interval [{fit['ci_low']:.3f}, {fit['ci_high']:.3f}]",
                    "passed": bool(lo <= fit["slope"] <= hi)})
    return out
