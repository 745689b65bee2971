#!/usr/bin/env python
r"""Performance of finite-N online SGD on a two-layer network (particles.sgd).

The problem of Mei, Montanari & Nguyen (PNAS 2018, Fig. 2): isotropic Gaussians
(``GaussianMixtureData.isotropic(320, 0.5)``), the clipped ramp activation (``mmn_ramp``),
N = 800 neurons w_i in R^320, w ~ N(0, 0.4^2/d I), eps = 1e-4 (PDE time t = steps x eps,
so 10^7 steps reach t = 1000), MMN's update
theta_i += 2 s (y - yhat) sigma'(<w_i, x>) x with s = eps xi / 2, xi = 2.

(a) ``TwoLayerSGD.advance``: everything a run does, data sampling included
    (``data.sample`` costs ~5 µs per step here: 320 normals per step; ``--prefetch``
    draws the next chunk in a helper thread while the current one computes, which pays
    only with ``--blas-threads 1``).
(b) ``TwoLayerSGD.run_on_data``: the compiled update on pre-drawn data arrays.
(c) the baseline: a plain NumPy per-step loop of the same update
    (``TwoLayerSGD.numpy_steps``) on the same data arrays as (b).

Each timing is the median of ``--repeats`` runs of ``--steps`` steps after a warm-up
(numba compile / cache load, BLAS start-up); the NumPy loop runs ``--numpy-steps`` steps
once per repeat. A short common run (``--check-steps``) from one initial state on one data
array checks that (b) and (c) give the same weights (relative max difference; the
target is ~1e-8, rounding differences only). The last line extrapolates to 10^7 steps.

Run ``python benchmarks/bench_sgd.py`` (~2 min on 2 cores, most of it the NumPy loop) or
with ``--steps 20000 --numpy-steps 2000`` for a quick run (< 30 s). ``--blas-threads``
(default 0 = library default, i.e. all cores) sets OpenBLAS' threads; ``--json out.json``
writes every number. Target: (a) <= 25 µs per step.
"""

from __future__ import annotations

import os

from _harness import (
    add_blas_threads_arg,
    add_common_args,
    fmt_t,
    log,
    make_parser,
    run_meta,
    set_blas_threads,
    table,
    timed,
    write_json,
)


def parse_args(argv=None):
    p = make_parser(__doc__)
    p.add_argument("--steps", type=int, default=100_000, help="steps per timed run of (a), (b) (default 1e5)")
    p.add_argument("--numpy-steps", type=int, default=None,
                   help="steps per timed run of the NumPy loop (default: --steps)")
    p.add_argument("--check-steps", type=int, default=2000, help="steps of the agreement check (default 2000)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of (a), (b) (default 3)")
    p.add_argument("--numpy-repeats", type=int, default=1, help="timed repeats of the NumPy loop (default 1)")
    p.add_argument("--n", type=int, default=800, help="neurons N (default 800)")
    p.add_argument("--dim", type=int, default=320, help="input dimension d (default 320)")
    p.add_argument("--eps", type=float, default=1e-4, help="eps (default 1e-4)")
    p.add_argument("--block", type=int, default=None, help="TwoLayerSGD block (default: the class default)")
    p.add_argument("--sub", type=int, default=None, help="TwoLayerSGD sub-block (default: the class default)")
    p.add_argument("--prefetch", action="store_true",
                   help="TwoLayerSGD(prefetch=True): draw the next chunk's data in a helper thread")
    add_blas_threads_arg(p, 0, "threads for OpenBLAS/OpenMP; 0 = library default (all cores)")
    add_common_args(p, quick=False)  # --json
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
set_blas_threads(ARGS.blas_threads, numba=False)  # must happen before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402

import ddsolve  # noqa: E402
from ddsolve.networks.activations import mmn_ramp  # noqa: E402
from ddsolve.networks.data import GaussianMixtureData  # noqa: E402
from particles.base import ParticleState  # noqa: E402
from particles.sgd import TwoLayerSGD  # noqa: E402

DELTA, KAPPA, TARGET_US = 0.5, 0.4, 25.0
EXTRAPOLATE = 10**7


def main():
    args = ARGS
    np_steps = args.numpy_steps or args.steps
    meta = run_meta({"numpy": np.__version__, "ddsolve": ddsolve.__version__}, args.blas_threads)
    log(f"bench_sgd: python {meta['python']}, numpy {meta['numpy']}; {meta['cpus']} CPUs, load "
        f"{meta['loadavg_start'][0]:.2f}; BLAS threads: {meta['blas_threads']}")
    data = GaussianMixtureData.isotropic(args.dim, DELTA)
    kw = {}
    if args.block:
        kw["block"] = args.block
    if args.sub:
        kw["sub"] = args.sub
    model = TwoLayerSGD(data, mmn_ramp(), args.n, args.eps, kappa=KAPPA, risk="none",
                        prefetch=args.prefetch, **kw)
    log(f"MMN online SGD: isotropic data d = {args.dim}, Delta = {DELTA}, mmn-ramp, N = {args.n}, "
        f"eps = {args.eps:g}, kappa = {KAPPA}; block = {model.block}, sub = {model.sub}, "
        f"chunk = {model.chunk}, prefetch = {model.prefetch}")
    rng = np.random.default_rng(20240611)
    state = model.initial_state(rng)

    # warm-up: compile / cache load, BLAS threads
    t0 = time.perf_counter()
    model.advance(state, 2 * model.chunk, rng)
    warm = time.perf_counter() - t0

    # (a) advance, data sampling included
    t_adv, _ = timed(lambda: model.advance(state, args.steps, rng), args.repeats)

    # the data of (b) and (c), and the sampling cost alone
    samp_rng = np.random.default_rng(1)                   # in chunks, as advance draws them
    t_samp, _ = timed(lambda: [data.sample(model.chunk, samp_rng) for _ in range(args.steps // model.chunk)], 1,
                      keep=False)
    t_samp["median"] *= args.steps / max(args.steps // model.chunk * model.chunk, 1)
    X, Y = data.sample(max(args.steps, np_steps, args.check_steps), np.random.default_rng(2))
    Xr, Yr = X[: args.steps], Y[: args.steps]
    x0 = state.x.copy()

    def run_b():
        st = ParticleState(x0.copy())
        model.run_on_data(st, Xr, Yr)

    t_data, _ = timed(run_b, args.repeats)

    # (c) the NumPy loop
    t_np, _ = timed(lambda: model.numpy_steps(x0, X[:np_steps], Y[:np_steps]), args.numpy_repeats,
                    keep=False)

    # agreement on a common run
    st = ParticleState(x0.copy())
    model.run_on_data(st, X[: args.check_steps], Y[: args.check_steps])
    ref = model.numpy_steps(x0, X[: args.check_steps], Y[: args.check_steps])
    rel = float(np.abs(st.x - ref).max() / np.abs(ref).max())
    moved = float(np.abs(ref - x0).max() / np.abs(x0).max())

    us = {"advance": t_adv["median"] / args.steps * 1e6, "on_data": t_data["median"] / args.steps * 1e6,
          "numpy": t_np["median"] / np_steps * 1e6, "sampling": t_samp["median"] / args.steps * 1e6}
    rows = [
        ["(a) TwoLayerSGD.advance (incl. sampling)", f"{us['advance']:.1f}",
         f"{t_adv['min'] / args.steps * 1e6:.1f}", args.steps, fmt_t(us["advance"] * 1e-6 * EXTRAPOLATE),
         f"{us['numpy'] / us['advance']:.1f}"],
        ["(b) TwoLayerSGD.run_on_data", f"{us['on_data']:.1f}", f"{t_data['min'] / args.steps * 1e6:.1f}",
         args.steps, fmt_t(us["on_data"] * 1e-6 * EXTRAPOLATE), f"{us['numpy'] / us['on_data']:.1f}"],
        ["(c) NumPy per-step loop (baseline)", f"{us['numpy']:.1f}", f"{t_np['min'] / np_steps * 1e6:.1f}",
         np_steps, fmt_t(us["numpy"] * 1e-6 * EXTRAPOLATE), "1.0"],
        ["    data.sample alone", f"{us['sampling']:.1f}", "-", args.steps, "-", "-"],
    ]
    log()
    log(table(["", "µs/step (median)", "min", "steps", "10^7 steps", "NumPy / this"], rows))
    log(f"\nwarm-up (compile or cache load + {2 * model.chunk} steps): {warm:.2f} s")
    log(f"agreement, {args.check_steps} common steps on the same data: max |W_(b) - W_(c)| / max |W_(c)| = "
        f"{rel:.1e} (the weights moved by {moved:.2f} of max |W_0|)")
    ok = us["advance"] <= TARGET_US
    log(f"target (a) <= {TARGET_US:g} µs/step: {'met' if ok else 'MISSED'} ({us['advance']:.1f} µs/step); "
        f"10^7 steps: {fmt_t(us['advance'] * 10)} with sampling, {fmt_t(us['on_data'] * 10)} on given data, "
        f"{fmt_t(us['numpy'] * 10)} for the NumPy loop")
    meta["loadavg_end"] = os.getloadavg()
    log(f"load average at end {meta['loadavg_end'][0]:.2f}")
    if args.json:
        out = {"meta": meta, "us_per_step": us, "advance_s": t_adv, "on_data_s": t_data, "numpy_s": t_np,
               "sampling_s": t_samp, "numpy_steps": np_steps, "steps": args.steps, "warmup_s": warm,
               "agreement_rel": rel, "check_steps": args.check_steps, "target_met": ok,
               "block": model.block, "sub": model.sub, "chunk": model.chunk, "prefetch": model.prefetch}
        write_json(args.json, out)


if __name__ == "__main__":
    main()
