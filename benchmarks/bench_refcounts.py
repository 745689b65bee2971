"""Reference counting in the compiled stepping: how many atomic increments a step makes, and
what they cost, against the same run with the counts made non-atomic.

numba counts the references of every array a compiled call receives, alone or inside a
tuple, with an atomic increment on entry and a decrement on exit, unless its pruning pass
pairs them up (``ddsolve.schemes.fv.newton``, module doc: "Workspace and reference
counts"). This script measures them on the error-controlled integrators of part (d) of
``bench_fv.py``, on the Curie–Weiss flagship (V = x⁴/4 − x²/2, U = |x − y|²/2, β = 3,
N(0.1, 0.5²) on [−3, 3], t = 10):

* **count**: numba's ``NRT_incref`` is rebuilt to also add one to a counter (a child
  process; numba builds these functions when its runtime starts, so the compiled and cached
  ddsolve kernels call the counting one), and one warm run of each integrator is counted;
  printed per accepted step;
* **cost**: the same runs timed (least over repeats of the mean of a batch) in two child
  processes side by side, one as numba ships (atomic) and one with the increments and
  decrements made plain loads and stores (numba's own ``_disable_atomicity`` switch, meant
  for this measurement); the ratio is the share of the run the atomic operations take.
  The non-atomic runtime is not safe with threads and exists only in the child process.

Both instrument numba internals (``numba.core.runtime.nrtdynmod``) and are an experiment,
not something ddsolve does: written for numba 0.68.

Run: ``python benchmarks/bench_refcounts.py [--cells 96] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

RUNS = (("ark4", "auto"), ("ark3", "auto"), ("esdirk4", "auto"), ("esdirk3", "auto"))


def _count_increfs():
    """Make numba's NRT_incref also add one to a ctypes counter; returns the counter."""
    from llvmlite import ir
    import numba.core.runtime.nrtdynmod as nrt

    counter = ctypes.c_int64(0)
    address = ctypes.addressof(counter)

    def define_incref(module, atomic_incr):
        fn = nrt.cgutils.get_or_insert_function(module, nrt.incref_decref_ty, "NRT_incref")
        fn.attributes.add("noinline")
        builder = ir.IRBuilder(fn.append_basic_block())
        [ptr] = fn.args
        i64 = ir.IntType(64)
        cell = builder.inttoptr(ir.Constant(i64, address), i64.as_pointer())
        builder.store(builder.add(builder.load(cell), ir.Constant(i64, 1)), cell)
        with nrt.cgutils.if_unlikely(builder, nrt.cgutils.is_null(builder, ptr)):
            builder.ret_void()
        builder.call(atomic_incr, [builder.bitcast(ptr, atomic_incr.args[0].type)])
        builder.ret_void()

    nrt._define_nrt_incref = define_incref
    return counter


def _problem(cells):
    import numpy as np

    from ddsolve import DistributionalDynamicsPDE, GridModel, Model, cartesian
    from ddsolve.laws.exact import gaussian_cell_averages
    from ddsolve.model.kernels import QuadraticKernel
    from ddsolve.model.potentials import DoubleWellPotential
    from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver

    gm = GridModel(Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(1.0), beta=3.0),
                   cartesian([-3, 3], cells), interaction="separable")
    rho0 = gaussian_cell_averages(gm.coords.axes[0].edges, 0.1, 0.5)

    def runner(method, rtol):
        solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), method, rtol=rtol)

        def run():
            state = gm.coords.field(np.array(rho0))
            solver.make_stepper(state)(state, 0.0, 10.0)
            return solver.info["steps"]
        return run
    return runner


def child(mode, cells, repeats):
    if mode == "count":
        counter = _count_increfs()
    elif mode == "nonatomic":
        import numba.core.runtime.nrtdynmod as nrt
        nrt._disable_atomicity = 1
    runner = _problem(cells)
    out = {}
    for method, rtol in RUNS:
        run = runner(method, rtol)
        steps = run()  # compiles or loads the kernels
        if mode == "count":
            c0 = counter.value
            run()
            out[method] = {"steps": steps, "increfs_per_step": (counter.value - c0) / steps}
        else:
            t0 = time.perf_counter()
            run()
            batch = max(1, int(0.2 / (time.perf_counter() - t0)))
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(batch):
                    run()
                best = min(best, (time.perf_counter() - t0) / batch)
            out[method] = {"steps": steps, "run_s": best}
    print(json.dumps(out))


def _spawn(mode, args):
    cmd = [sys.executable, __file__, "--child", mode, "--cells", str(args.cells), "--repeats", str(args.repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(os.environ))
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=96)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--rounds", type=int, default=3, help="alternating atomic / non-atomic processes")
    p.add_argument("--child", choices=["count", "atomic", "nonatomic"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.cells, args.repeats)
    from _harness import fmt_t, table

    counts = _spawn("count", args)
    times = {"atomic": [], "nonatomic": []}
    for _ in range(args.rounds):
        for mode in times:
            times[mode].append(_spawn(mode, args))
    rows = []
    for method, _ in RUNS:
        a = min(r[method]["run_s"] for r in times["atomic"])
        n = min(r[method]["run_s"] for r in times["nonatomic"])
        rows.append([method, counts[method]["steps"], f"{counts[method]['increfs_per_step']:.0f}",
                     fmt_t(a), fmt_t(n), f"{a / n:.2f}"])
    print(f"Curie–Weiss flagship on {args.cells} cells, t = 10, auto tolerances; least of "
          f"{args.rounds} alternating processes each")
    print(table(["integrator", "steps", "increfs/step", "run (atomic)", "run (non-atomic)", "ratio"], rows))


if __name__ == "__main__":
    main()
