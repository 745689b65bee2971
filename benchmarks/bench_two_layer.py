#!/usr/bin/env python
r"""Performance of the two-layer (mean-field neural network) problem.

(a) Kernel tabulation on a 1000-cell radial grid at d = 320 (isotropic MMN data,
    Delta = 0.5, non-monotone activation): the cell-averaged kernel K_ij by the separable
    Mehler-Hermite series (``GridModel`` with interaction "separable", the default), and
    the dense M x M matrix from the same series, against the baseline of a direct angle
    quadrature, ``ddsolve.networks.reduction.reduced_kernel_by_quadrature``, at the same 2 x 2
    Gauss-Legendre points of every cell pair. The baseline costs ~0.1 s per point pair,
    too slow for all 4 x 10^6 of them: it is timed on a random sample of cell pairs and
    extrapolated to all M^2 pairs. The same sample gives the largest difference between
    the tabulated K (series, truncated and compressed) and the quadrature.
(b) Wall time of the whole non-monotone kappa = 0.4 run (1000 cells, t = 0..1000, by
    then the risk is within about 1% of its value at t = 500) with ``ddsolve.app.runner.run``:
    median of 3 runs after a warm-up run (numba compile / cache load), for the separable
    interaction and the baseline interaction = "dense" (M x M matrix of the same kernel).

Run ``python benchmarks/bench_two_layer.py`` (~1.5 min on 2 cores) or with ``--quick``
(< 1 min: fewer sampled pairs, one timed run each). ``--json out.json`` writes every
number. Targets: tabulation <= 5 s, run <= 30 s.
"""

from __future__ import annotations


from _harness import (
    add_blas_threads_arg,
    add_common_args,
    finish,
    fmt_t,
    log,
    make_parser,
    run_meta,
    run_parts,
    set_blas_threads,
    table,
    timed,
    write_json,
)


def parse_args(argv=None):
    p = make_parser(__doc__)
    add_common_args(p, parts="ab")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, quick 1)")
    p.add_argument("--pairs", type=int, default=None,
                   help="cell pairs sampled for the quadrature baseline (default 48, quick 8)")
    p.add_argument("--cells", type=int, default=1000, help="radial cells (default 1000)")
    p.add_argument("--t-final", type=float, default=1000.0, help="final time of the run in (b)")
    add_blas_threads_arg(p, 1, "threads for OpenBLAS/OpenMP (dense mat-vec); 0 = library default")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
set_blas_threads(ARGS.blas_threads)  # must happen before numpy is imported

import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ddsolve  # noqa: E402
from ddsolve.app.config import build  # noqa: E402
from ddsolve.app.runner import run  # noqa: E402
from ddsolve.grid.grid_model import GridModel  # noqa: E402
from ddsolve.networks.reduction import reduced_kernel_by_quadrature  # noqa: E402

R_MAX, DIM, DELTA, KAPPA = 4.0, 320, 0.5, 0.4
TAB_TARGET, RUN_TARGET = 5.0, 30.0


def config(cells, t_final, interaction="auto", save_every=10.0):
    """The non-monotone MMN run of examples/mmn_nonmonotone.toml (kappa = 0.4)."""
    return {"model": {"problem": "two-layer", "activation": "mmn-nonmonotone", "dim": DIM,
                      "delta": DELTA, "kappa": KAPPA},
            "grid": {"r_max": R_MAX, "cells": cells},
            "scheme": {"interaction": interaction},
            "run": {"t_final": t_final, "save_every": min(save_every, t_final)}}


# ---------------------------------------------------------------------------------------
def part_a(args, R, results):
    M = args.cells
    log(f"\n(a) kernel tabulation: radial grid of {M} cells on [0, {R_MAX:g}], d = {DIM}, "
        f"non-monotone sigma, Delta = {DELTA}")
    cfg = config(M, 1.0)

    def tabulate(method):
        setup = build(cfg)
        return GridModel(setup.model, setup.coords, interaction=method), setup

    tabulate("separable")                                      # imports, first-call overheads
    t_sep, (gm, setup) = timed(lambda: tabulate("separable"), R)
    t_den, (gm_d, _) = timed(lambda: tabulate("dense"), R)
    info = setup.model.info["two_layer"]
    red = setup.model.potential.reduction
    F = gm.operator.F
    K_dense = gm_d.operator.K
    log(f"series: Hermite order K = {info['hermite_order']}, {info['terms']} terms, truncation bound "
        f"{info['truncation_bound']:.1e} (relative); compressed to rank {F.shape[0]}; "
        f"max |K_separable - K_dense| = {np.abs(F.T @ F - K_dense).max():.1e}")

    # baseline: direct angle quadrature at the same Gauss-Legendre points, sampled pairs
    n_pairs = args.pairs or (8 if args.quick else 48)
    rng = np.random.default_rng(0)
    I, J = rng.integers(0, M, n_pairs), rng.integers(0, M, n_pairs)
    nodes, w = setup.coords.quadrature_nodes(2)                # (M, q, 1), (q,)
    q = w.size
    r = np.repeat(nodes[I, :, 0], q, axis=1).ravel()          # (pairs, q*q) node pairs
    rp = np.tile(nodes[J, :, 0], (1, q)).ravel()
    ww = np.outer(w, w).ravel()
    chunk = 16
    t0 = time.perf_counter()
    u = np.concatenate([reduced_kernel_by_quadrature(red.data, red.activation, r[s:s + chunk],
                                                     rp[s:s + chunk]) for s in range(0, r.size, chunk)])
    t_quad = time.perf_counter() - t0
    K_quad = (u.reshape(n_pairs, q * q) * ww).sum(1)
    per_pair = t_quad / n_pairs
    t_quad_full = per_pair * M * M
    K_tab = np.einsum("ki,ki->i", F[:, I], F[:, J])           # tabulated (compressed) entries
    u_series = red.kernel(r[:, None], rp[:, None])             # pointwise series (uncompressed)
    scale = float(np.abs(K_dense).max())
    err_tab = float(np.abs(K_tab - K_quad).max())
    err_pt = float(np.abs(u_series - u).max())
    # accuracy of the baseline itself: 400 vs 200 angle nodes on the first 4 point pairs
    u400 = reduced_kernel_by_quadrature(red.data, red.activation, r[:4], rp[:4], angle_nodes=400)
    err_q = float(np.abs(u400 - u[:4]).max())

    rows = [["separable series (GridModel)", fmt_t(t_sep["median"]), fmt_t(t_sep["min"]), "measured", "1"],
            ["dense matrix from the series", fmt_t(t_den["median"]), fmt_t(t_den["min"]), "measured",
             f"{t_den['median'] / t_sep['median']:.0f}"],
            ["angle quadrature (baseline)", fmt_t(t_quad_full), "-",
             f"extrapolated from {n_pairs} pairs", f"{t_quad_full / t_sep['median']:.1e}"]]
    log(table(["K_ij for all cell pairs", "median", "min", "", "× separable"], rows))
    log(f"baseline: {n_pairs} random cell pairs ({n_pairs * q * q} point pairs) took {t_quad:.1f} s = "
        f"{per_pair:.3f} s per cell pair; x {M}^2 pairs = {fmt_t(t_quad_full)} "
        f"(half that using the symmetry K_ij = K_ji)")
    log(f"max |K_tabulated - K_quadrature| on the sample: {err_tab:.1e} ({err_tab / scale:.1e} of max|K| = "
        f"{scale:.3f}); pointwise series vs quadrature: {err_pt:.1e}; quadrature 200 vs 400 angle nodes: "
        f"{err_q:.1e}")
    ok = t_sep["median"] <= TAB_TARGET
    log(f"target tabulation <= {TAB_TARGET:g} s: {'met' if ok else 'MISSED'} ({fmt_t(t_sep['median'])})")
    results["a"] = {"cells": M, "separable_s": t_sep, "dense_s": t_den,
                    "hermite_order": info["hermite_order"],
                    "terms": info["terms"], "truncation_bound": info["truncation_bound"], "rank": F.shape[0],
                    "baseline_pairs": n_pairs, "baseline_sample_s": t_quad, "baseline_per_pair_s": per_pair,
                    "baseline_extrapolated_s": t_quad_full, "max_err_tabulated": err_tab,
                    "max_err_pointwise": err_pt, "kernel_scale": scale, "quadrature_self_err": err_q,
                    "target_met": ok}


# ---------------------------------------------------------------------------------------
def part_b(args, R, results):
    M, T = args.cells, args.t_final
    log(f"\n(b) whole run: non-monotone, kappa = {KAPPA}, d = {DIM}, {M} cells, t = 0..{T:g}, "
        f"ddsolve.app.runner.run (writes density.h5, diagnostics.csv, summary.json and two PNGs)")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("separable", "dense"):
            d = Path(tmp) / method
            run(config(M, 1.0, method), d / "warmup")             # numba compile / cache load
            loops = []                                          # summary["wall_time"]: solver loop

            def once(method=method, d=d, loops=loops):
                res = run(config(M, T, method), d / "run")
                loops.append(res.summary["wall_time"])
                return res

            stats, res = timed(once, R)
            diag = res.diagnostics
            out[method] = {"wall": stats, "solver_loop_s": float(np.median(loops)), "solver_loop_all": loops,
                           "steps": res.summary["steps"],
                           "risk": diag[-1]["risk"], "dissipation": diag[-1]["dissipation"],
                           "risk_half": next(row["risk"] for row in diag if row["t"] >= T / 2)}
    s, dn = out["separable"], out["dense"]
    rows = []
    for method, o in out.items():
        rows.append([method, fmt_t(o["wall"]["median"]), fmt_t(o["wall"]["min"]), fmt_t(o["solver_loop_s"]),
                     o["steps"], f"{o['risk']:.9f}", f"{o['wall']['median'] / s['wall']['median']:.1f}"])
    log(table(["interaction", f"median of {R}", "min", "solver loop", "steps", "final risk", "× separable"],
              rows))
    log(f"final risks agree to {abs(s['risk'] - dn['risk']):.1e}; plateau: (R(T/2) - R(T)) / R(T) = "
        f"{(s['risk_half'] - s['risk']) / s['risk']:.2%}, dissipation at T {s['dissipation']:.1e}")
    ok = s["wall"]["median"] <= RUN_TARGET
    log(f"target run <= {RUN_TARGET:g} s: {'met' if ok else 'MISSED'} ({fmt_t(s['wall']['median'])}); "
        f"dense baseline / separable = {dn['wall']['median'] / s['wall']['median']:.1f}x")
    out["target_met"] = ok
    results["b"] = out


def main():
    args = ARGS
    R = args.repeats or (1 if args.quick else 3)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    t_start = time.perf_counter()
    meta = run_meta({"numpy": np.__version__, "ddsolve": ddsolve.__version__}, args.blas_threads,
                    quick=args.quick, repeats=R)
    log(f"bench_two_layer: python {meta['python']}, numpy {meta['numpy']}, ddsolve {meta['ddsolve']}; "
        f"{meta['cpus']} CPUs, load {meta['loadavg_start'][0]:.2f}; BLAS threads: {meta['blas_threads']}; "
        f"repeats {R}{' (quick)' if args.quick else ''}")
    results = {"meta": meta}
    run_parts((("a", part_a), ("b", part_b)), args.parts, meta, args, R, results)
    finish(meta, t_start)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
