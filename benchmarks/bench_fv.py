#!/usr/bin/env python
r"""Performance benchmarks of ddsolve's finite-volume solver.

(a) 1D Ornstein–Uhlenbeck  ∂tρ = ∂x(xρ) + ∂xxρ  on [-6, 6] (no flux), ρ0 = N(1, 0.5²),
    to t = 1, against the exact Gaussian (mean e^{-t}, variance 0.25e^{-2t} + 1 - e^{-2t})
    in cell averages. For ddsolve and for py-pde's generic ``pde.PDE`` (explicit Euler at
    two fixed dt, and adaptive Euler) the coarsest grid reaching an L1 error target is
    searched, then that run is timed (median of warm repeats). Also: compile times, and a
    profile of where ddsolve spends its time.
(b) 1D nonlocal aggregation with W(z) = |z|²/2 - |z| (β = ∞, and a diffusive β = 10
    variant): time per SSPRK(4,3) step for interaction="dense" and "fft" at M = 500..2000,
    with the fitted cost exponent.
(c) Interaction operator alone: ``gm.operator.apply(rho)`` and the operator build,
    dense vs FFT, 1D M = 256..4096 and 2D 64×64 / 128×128, with their agreement.

(d) Work–precision of the time integrators on (i) the OU problem of (a) and (ii) the
    Curie–Weiss flagship (V = x⁴/4 - x²/2, U = |x-y|²/2, β = 3, N(0.1, 0.5²) on [-3, 3],
    t = 10; reference: Richardson extrapolation of ESDIRK4 at rtol 1e-10 on 4800/9600
    cells): for L1 targets 1e-3, 1e-4, 1e-5, every method's fastest configuration (coarsest
    grid of a ladder, loosest tolerance) — ddsolve ``time = auto`` with the default
    tolerances, each integrator (trbdf2, esdirk3, esdirk4, ark3, ark4) over rtol 1e-3..1e-6,
    SSPRK(4,3), and py-pde's ``pde.PDE`` with explicit Euler at 0.9 of its stability bound
    and its adaptive Euler. Ratios are against the fastest py-pde configuration; py-pde's
    JIT time per grid is reported apart.

Run ``python benchmarks/bench_fv.py`` (full, ~5-10 min on 2 cores, part d another ~10) or with ``--quick``
(< 1 min smoke run). ``--json out.json`` writes every number. Times are wall-clock
medians of warm repeats (numba already compiled) unless labelled otherwise.
"""

from __future__ import annotations

import os
import sys

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
    time_per_call,
    timed,
    write_json,
)


def parse_args(argv=None):
    p = make_parser(__doc__)
    add_common_args(p, parts="abcd")
    p.add_argument("--repeats", type=int, default=None,
                   help="warm repeats per timing (default 7, quick 5)")
    p.add_argument("--targets", type=float, nargs="+", default=None,
                   help="L1 error targets for part (a) (default 1e-3 1e-4; quick 1e-3)")
    add_blas_threads_arg(p, 1, "threads for OpenBLAS/OpenMP (dense mat-vec); 0 = library default. "
                               "Default 1: on a small shared machine a threaded dgemv can be >10x slower "
                               "when another process holds a core.")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the cold/cached numba compile measurement (subprocesses)")
    p.add_argument("--dense-build-128", action="store_true",
                   help="really build the 128x128 DenseInteraction (2 GiB, minutes); by default "
                        "its build time is extrapolated from 64x64 and the apply is timed on the "
                        "same matrix assembled from the convolution vector")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
set_blas_threads(ARGS.blas_threads)  # must happen before numpy is imported

import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402
import pde  # noqa: E402
from scipy.special import erfc  # noqa: E402

import ddsolve  # noqa: E402
from ddsolve import (  # noqa: E402
    DistributionalDynamicsPDE,
    GridModel,
    Model,
    SSPRKSolver,
    cartesian,
    make_kernel,
    make_potential,
)
from ddsolve.schemes.fv import kernels as fv  # noqa: E402
from ddsolve.schemes.fv.pde import pack_interaction  # noqa: E402

logging.getLogger("pde").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=nb.NumbaWarning)

T_END = 1.0
DOMAIN = (-6.0, 6.0)
MEAN0, STD0 = 1.0, 0.5
# candidate grids for the "coarsest grid" search (ratio ~1.1)
CANDIDATES = [40, 44, 48, 52, 56, 60, 66, 72, 80, 88, 96, 104, 112, 120, 132, 144, 160, 176,
              192, 208, 224, 240, 264, 288, 320, 352, 384, 416, 448, 480, 528, 576, 640,
              704, 768, 832, 896, 960, 1024, 1120, 1216, 1344, 1472, 1600]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def fit_slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


try:  # the project's helper (same formula); keep a local copy so the script stands alone
    from ddsolve.laws.exact import gaussian_cell_averages
except ImportError:  # pragma: no cover
    def gaussian_cell_averages(edges, mean, std):
        z = (np.asarray(edges, float) - mean) / (np.sqrt(2.0) * std)
        upper, lower = 0.5 * erfc(z), 0.5 * erfc(-z)
        mass = np.where(z[1:] <= 0, lower[1:] - lower[:-1], upper[:-1] - upper[1:])
        return mass / np.diff(edges)


def ou_exact(edges, t):
    """Exact cell averages of the OU solution: mean e^{-t}, var 0.25 e^{-2t} + 1 - e^{-2t}."""
    mean = MEAN0 * math.exp(-t)
    var = STD0**2 * math.exp(-2 * t) + 1.0 - math.exp(-2 * t)
    return gaussian_cell_averages(edges, mean, math.sqrt(var))


def edges_of(M):
    return np.linspace(DOMAIN[0], DOMAIN[1], M + 1)


def l1_error(rho, M, t=T_END):
    e = edges_of(M)
    return float(np.sum(np.abs(rho - ou_exact(e, t))) * (e[1] - e[0]))


# ---------------------------------------------------------------------------------------
# part (a): OU — methods
# ---------------------------------------------------------------------------------------
class DdsolveOU:
    """ddsolve on the OU problem; ``rk_order`` selects SSP-RK order (3 = default)."""

    def __init__(self, rk_order=3, cfl=0.9, order=2):
        self.rk_order, self.cfl, self.order = rk_order, cfl, order
        nst = len(fv.SSP_TABLES[rk_order])
        self.label = (f"ddsolve SSPRK({nst},{rk_order}) cfl={cfl}"
                      + (" (default)" if rk_order == 3 else ""))
        self.param = f"order={order}"

    def build(self, M):
        c = cartesian(list(DOMAIN), M)
        m = Model(potential=make_potential("quadratic", 1, stiffness=1.0), beta=1.0)
        eq = DistributionalDynamicsPDE(GridModel(m, c), order=self.order)
        solver = SSPRKSolver(eq, rk_order=self.rk_order, cfl=self.cfl)
        rho0 = ou_exact(c.axes[0].edges, 0.0)
        state0 = c.field(rho0)
        return {"coords": c, "eq": eq, "solver": solver, "state0": state0}

    def stepper(self, b):
        t0 = time.perf_counter()
        stepper = b["solver"].make_stepper(b["state0"])
        return stepper, time.perf_counter() - t0

    def reset(self, b):
        b["solver"].info["steps"] = 0

    def steps(self, b):
        return int(b["solver"].info["steps"])

    def end_to_end(self, b):
        st = b["state0"].copy()
        return pde.Controller(b["solver"], t_range=T_END, tracker=None).run(st)


class PyPDEOU:
    """py-pde's generic PDE class with its numba backend.

    Boundary condition: the no-flux wall needs zero *total* flux  c' + x c = 0.  We give the
    diffusive operator a Neumann condition (c' = 0, ghost = last cell) and the argument of
    the advective operator d_dx(c*x) a zero value (ghost = -(cx) of the last cell), so the
    central-difference boundary terms of laplace and d_dx both vanish and the discrete
    mass is conserved to round-off (checked). Plain Neumann on both leaks ~1e-7 of mass by
    t=1 (the density at the walls is ~1e-8); both are far below the error targets.
    """

    BC = {"bc": {"derivative": 0}, "bc_ops": {"c:d_dx": {"value": 0}}}
    _grids: dict = {}  # shared by all instances: operators are compiled once per grid

    def __init__(self, kind, dt_factor=None, tolerance=None):
        self.kind = kind
        self.dt_factor, self.tolerance = dt_factor, tolerance
        if kind == "euler":
            self.label = f"py-pde Euler dt<={dt_factor:g}h²"
            self.param = ""
        else:
            self.label = "py-pde Euler adaptive"
            self.param = f"tol={tolerance:g}"

    def build(self, M):
        if M not in self._grids:  # operators are cached on grid objects; reuse them
            g = pde.CartesianGrid([list(DOMAIN)], M)
            eq = pde.PDE({"c": "laplace(c) + d_dx(c*x)"}, **self.BC)
            self._grids[M] = (g, eq)
        g, eq = self._grids[M]
        h = (DOMAIN[1] - DOMAIN[0]) / M
        if self.kind == "euler":
            nsteps = math.ceil(T_END / (self.dt_factor * h * h))
            dt = T_END / nsteps  # exact end time: py-pde takes round(T/dt) fixed steps
            solver = pde.EulerSolver(eq, backend="numba")
        else:
            dt = 0.25 * h * h  # initial step of the adaptive controller
            solver = pde.EulerSolver(eq, backend="numba", adaptive=True, tolerance=self.tolerance)
        state0 = pde.ScalarField(g, ou_exact(edges_of(M), 0.0))
        return {"grid": g, "eq": eq, "solver": solver, "state0": state0, "dt": dt}

    def stepper(self, b):
        t0 = time.perf_counter()
        stepper = b["solver"].make_stepper(b["state0"], dt=b["dt"])  # JIT-compiles here
        return stepper, time.perf_counter() - t0

    def reset(self, b):
        b["solver"].info["steps"] = 0
        b["solver"].info["dt"] = b["dt"]  # adaptive: restart from the same initial step

    def steps(self, b):
        return int(b["solver"].info["steps"])

    def end_to_end(self, b):
        """What ``pde.solve`` does: Controller.run re-creates (re-JITs) the stepper."""
        st = b["state0"].copy()
        return pde.Controller(b["solver"], t_range=T_END, tracker=None).run(st, dt=b["dt"])


_BUILT = {}  # (label, param, M) -> (build dict, stepper): timing reuses the search's JIT


def run_once(method, M, compile_log=None):
    """Build, compile and run one configuration; return (error, steps, build dict, stepper)."""
    key = (method.label, method.param, M)
    if key in _BUILT:
        b, stepper = _BUILT[key]
        method.reset(b)
        st = b["state0"].copy()
        stepper(st, 0.0, T_END)
        return _result(method, b, st, M), b, stepper
    b = method.build(M)
    stepper, t_make = method.stepper(b)
    if compile_log is not None:
        compile_log.append({"method": method.label, "M": M, "make_stepper_s": t_make})
    method.reset(b)
    st = b["state0"].copy()
    t_end = stepper(st, 0.0, T_END)
    if not abs(t_end - T_END) < 1e-9:
        raise RuntimeError(f"{method.label}: stopped at t={t_end}")
    _BUILT[key] = (b, stepper)
    return _result(method, b, st, M), b, stepper


def _result(method, b, st, M):
    err = l1_error(st.data, M) if np.all(np.isfinite(st.data)) else float("inf")
    return {"M": M, "l1": err, "steps": method.steps(b), "mass_drift": float(
        (st.data.sum() - b["state0"].data.sum()) * (DOMAIN[1] - DOMAIN[0]) / M)}


def coarsest_grid(method, target, cache, guess, compile_log):
    """Smallest M in CANDIDATES with error <= target, assuming the error decreases with M
    (gallop from ``guess``, then bisect). ``cache`` maps M -> result dict."""
    def ok(i):
        M = CANDIDATES[i]
        if M not in cache:
            cache[M] = run_once(method, M, compile_log)[0]
        return cache[M]["l1"] <= target

    i = _coarsest_index(ok, len(CANDIDATES), int(np.searchsorted(CANDIDATES, guess)))
    return None if i is None else CANDIDATES[i]


def part_a(args, R, results):
    log("=" * 100)
    log("(a) 1D Ornstein–Uhlenbeck ∂tρ = ∂x(xρ) + ∂xxρ on [-6,6], ρ0 = N(1, 0.5²), t = 1; "
        "L1 error vs exact cell averages")
    log("=" * 100)
    targets = args.targets or ([1e-3] if args.quick else [1e-3, 1e-4])
    dd_methods = [DdsolveOU(rk_order=3)] + ([] if args.quick else [DdsolveOU(rk_order=2)])
    pp_methods = [PyPDEOU("euler", dt_factor=0.45), PyPDEOU("euler", dt_factor=0.25)]
    tolerances = [1e-3, 1e-4, 1e-5, 1e-6]
    adaptive = {tol: PyPDEOU("adaptive", tolerance=tol) for tol in tolerances}
    # first guesses of the coarsest grid for the first target (the search verifies them)
    first_guess = {"ddsolve": 112, "py-pde Euler dt<=0.45h²": 104, "py-pde Euler dt<=0.25h²": 80,
                   "adaptive": 80}
    if args.quick:  # smoke mode: one py-pde configuration, no adaptive search
        pp_methods, adaptive = pp_methods[1:], {}
    compile_log = []
    caches = {}
    rows, out = [], {"targets": targets, "runs": [], "search": {}, "compile_log": compile_log}

    def search(method, target, guess):
        cache = caches.setdefault(method.label + method.param, {})
        t0 = time.perf_counter()
        M = coarsest_grid(method, target, cache, guess, compile_log)
        out["search"].setdefault(method.label + " " + method.param, {}).update(
            {str(k): v for k, v in sorted(cache.items())})
        log(f"  search {method.label:32s} {method.param:10s} target {target:.0e}: M = {M}  "
            f"(evaluated {sorted(cache)}; {time.perf_counter() - t0:.1f} s)")
        return M

    def measure(method, M, target):
        res, b, stepper = run_once(method, M)

        def go(st):
            method.reset(b)
            stepper(st, 0.0, T_END)
            return st
        stp, st = timed(go, R, setup=lambda: b["state0"].copy())
        # py-pde's end-to-end run re-JITs the stepper (~1-5 s): fewer repeats
        e2e_reps = (2 if args.quick else 3) if isinstance(method, PyPDEOU) else R
        e2e, _ = timed(lambda: method.end_to_end(b), e2e_reps)
        row = {"target": target, "method": method.label, "param": method.param, "M": M,
               "l1": res["l1"], "steps": res["steps"], "mass_drift": res["mass_drift"],
               "step_only_s": stp, "end_to_end_s": e2e,
               "us_per_step": stp["median"] / max(res["steps"], 1) * 1e6}
        out["runs"].append(row)
        return row

    prev = {}
    for target in targets:
        log(f"\n-- target L1 <= {target:.0e}: coarsest grid per method")
        chosen = []
        for meth in dd_methods + pp_methods:
            guess = prev.get(meth.label + meth.param)
            g0 = first_guess.get(meth.label, first_guess["ddsolve"])
            guess = g0 if guess is None else guess[0] * math.sqrt(guess[1] / target)
            M = search(meth, target, guess)
            if M is not None:
                prev[meth.label + meth.param] = (M, target)
                chosen.append((meth, M))
        # adaptive: grid from the tightest tolerance, then the loosest tolerance still passing
        tight = adaptive.get(min(tolerances))
        guess = prev.get("adaptive")
        guess = first_guess["adaptive"] if guess is None else guess[0] * math.sqrt(guess[1] / target)
        M = search(tight, target, guess) if tight is not None else None
        if M is not None:
            prev["adaptive"] = (M, target)
            best = tight
            for tol in sorted(tolerances, reverse=True):
                if tol == min(tolerances):
                    break
                meth = adaptive[tol]
                cache = caches.setdefault(meth.label + meth.param, {})
                if M not in cache:
                    cache[M] = run_once(meth, M, compile_log)[0]
                log(f"  adaptive tol={tol:g} at M={M}: L1 = {cache[M]['l1']:.3e}")
                if cache[M]["l1"] <= target:
                    best = meth
                    break
            chosen.append((best, M))
        for meth, M in chosen:
            row = measure(meth, M, target)
            rows.append(row)

    # table
    log("\nTimings (stepping only = compiled stepper already built, median of "
        f"{R} warm runs; end-to-end = pde.Controller(...).run(), which for py-pde re-JITs)")
    trows = []
    for r in rows:
        trows.append([f"{r['target']:.0e}", r["method"], r["param"], r["M"], r["steps"],
                      f"{r['l1']:.2e}", f"{r['mass_drift']:.0e}", fmt_t(r["step_only_s"]["median"]),
                      fmt_t(r["step_only_s"]["min"]), f"{r['us_per_step']:.2f}",
                      fmt_t(r["end_to_end_s"]["median"])])
    log(table(["target", "method", "param", "M", "steps", "L1 err", "mass drift",
               "step-only", "(min)", "µs/step", "end-to-end"], trows,
              ["<", "<", "<", ">", ">", ">", ">", ">", ">", ">", ">"]))

    log("\nRatios (time py-pde / time ddsolve default; > 1 means ddsolve is faster):")
    ratio_rows = []
    out["ratios"] = []
    for target in targets:
        rt = [r for r in rows if r["target"] == target]
        dd = next((r for r in rt if r["method"].endswith("(default)")), None)
        pp = [r for r in rt if r["method"].startswith("py-pde")]
        if dd is None or not pp:
            continue
        for r in pp:
            rs = r["step_only_s"]["median"] / dd["step_only_s"]["median"]
            re_ = r["end_to_end_s"]["median"] / dd["end_to_end_s"]["median"]
            ratio_rows.append([f"{target:.0e}", f"{r['method']} {r['param']}".strip(),
                               f"{rs:.3f}", f"{re_:.1f}"])
            out["ratios"].append({"target": target, "pypde": r["method"], "param": r["param"],
                                  "step_only": rs, "end_to_end": re_})
        best = min(pp, key=lambda r: r["step_only_s"]["median"])
        rs = best["step_only_s"]["median"] / dd["step_only_s"]["median"]
        ratio_rows.append([f"{target:.0e}", "=> fastest py-pde (step-only)", f"{rs:.3f}",
                           "(ddsolve " + ("faster" if rs > 1 else f"{1 / rs:.0f}x slower") + ")"])
    log(table(["target", "py-pde method", "step-only ratio", "end-to-end ratio"], ratio_rows))

    # compile times recorded during the search (py-pde has no on-disk cache)
    pp_comp = [c for c in compile_log if c["method"].startswith("py-pde")]
    if pp_comp:
        first = pp_comp[0]["make_stepper_s"]
        rest = [c["make_stepper_s"] for c in pp_comp[1:]]
        med = float(np.median(rest)) if rest else float("nan")
        mx = float(max(rest)) if rest else float("nan")
        log(f"\npy-pde JIT: first stepper in this process {first:.1f} s; later steppers median "
            f"{med:.2f} s (max {mx:.1f} s, new grid sizes recompile the operators); "
            "py-pde does not cache these on disk.")
        out["pypde_compile"] = {"first_s": first, "later_median_s": float(np.median(rest)) if rest else None,
                                "later_max_s": float(max(rest)) if rest else None}

    if not args.no_compile and not args.quick:
        out["ddsolve_compile"] = ddsolve_compile_times()
    elif args.quick:
        log("(quick: cold/cached numba compile measurement skipped)")

    # profile ddsolve at the finest chosen grid
    dd_rows = [r for r in rows if r["method"].endswith("(default)")]
    pp_rows = [r for r in rows if r["method"].startswith("py-pde Euler dt")]
    if dd_rows and args.quick:
        log("(quick: per-kernel profile skipped)")
    elif dd_rows:
        out["profile"] = profile_ddsolve(max(r["M"] for r in dd_rows), dd_rows, pp_rows, args, R)
    results["a"] = out


def ddsolve_compile_times():
    """Cold compile (empty NUMBA_CACHE_DIR), then a cached load, each in a fresh process."""
    code = textwrap.dedent("""
        import time, json; t0 = time.perf_counter()
        import numpy as np, pde
        from ddsolve import (cartesian, Model, GridModel, DistributionalDynamicsPDE,
                             SSPRKSolver, make_potential)
        t1 = time.perf_counter()
        c = cartesian([-6, 6], 100); x = c.axes[0].centers
        rho0 = np.exp(-(x - 1) ** 2 / 0.5); rho0 /= rho0.sum() * c.cell_volume
        m = Model(potential=make_potential("quadratic", 1, stiffness=1.0), beta=1.0)
        solver = SSPRKSolver(DistributionalDynamicsPDE(GridModel(m, c), order=2))
        t2 = time.perf_counter()
        pde.Controller(solver, t_range=1.0, tracker=None).run(c.field(rho0.copy()))
        t3 = time.perf_counter()
        pde.Controller(solver, t_range=1.0, tracker=None).run(c.field(rho0.copy()))
        t4 = time.perf_counter()
        print(json.dumps({"import_s": t1 - t0, "first_solve_s": t3 - t2, "second_solve_s": t4 - t3}))
    """)
    res = {}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for label in ("cold (empty cache)", "cached (2nd process)"):
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                log(f"compile measurement failed: {p.stderr[-500:]}")
                return res
            res[label] = json.loads(p.stdout.strip().splitlines()[-1])
    rows = [[k, fmt_t(v["import_s"]), fmt_t(v["first_solve_s"]), fmt_t(v["second_solve_s"])]
            for k, v in res.items()]
    log("\nddsolve numba compile (fresh processes, NUMBA_CACHE_DIR -> temp dir; OU M=100 to t=1):")
    log(table(["process", "import", "first solve", "second solve (warm)"], rows))
    return res


# --- profile ------------------------------------------------------------------------------
_loops = {}


def _compiled_loops():
    """Loops calling ddsolve's compiled kernels n times (no Python dispatch per call)."""
    if _loops:
        return _loops

    @nb.njit
    def loop_psi(n, inter, rho, V, psi):
        for _ in range(n):
            fv.compute_psi(inter, rho, V, psi)

    @nb.njit
    def loop_pot(n, rho, psi, log_m, phi):
        for _ in range(n):
            fv.potential_field(rho, psi, log_m, 1.0, 1.0, phi)

    @nb.njit
    def loop_log(n, rho, out):
        for _ in range(n):
            for i in range(rho.shape[0]):
                out[i, 0] = math.log(rho[i, 0] + 1e-300 * n)

    @nb.njit
    def loop_axis(n, rho, phi, h, F):
        s = 0.0
        for _ in range(n):
            s += fv.axis_fluxes(rho, phi, h, False, 2.0, 2, 1e-20, F)
        return s

    @nb.njit
    def loop_max(n, rho):
        s = 0.0
        for _ in range(n):
            s += np.max(rho)
        return s

    @nb.njit
    def loop_euler(n, rho, h, F, Fy, scale, out):
        s = 0
        for _ in range(n):
            s += fv.euler_update(rho, rho, 0.5, 0.5, 1e-9, F, h, Fy, 1.0, scale, out)
        return s

    @nb.njit
    def loop_check(n, rho):
        s = 0
        for k in range(n):
            s += fv.check_state(rho, 1e-12 * k)
        return s

    @nb.njit
    def loop_step(n, rho, table, inter, V, log_m, T, sched, geom, scheme, work):
        for _ in range(n):
            fv.rk_step(rho, 0.0, 1e-12, table, inter, V, log_m, T, sched, geom, scheme, work)

    _loops.update(psi=loop_psi, pot=loop_pot, log=loop_log, axis=loop_axis, max=loop_max,
                  euler=loop_euler, check=loop_check, step=loop_step)
    return _loops


def profile_ddsolve(M, dd_rows, pp_rows, args, R):
    log(f"\nProfile of ddsolve (OU, M = {M}): steps × stages × per-stage cost")
    L = _compiled_loops()
    meth = DdsolveOU(rk_order=3)
    b = meth.build(M)
    eq = b["eq"]
    st = b["state0"].copy()
    meth.stepper(b)[0](st, 0.0, 0.5 * T_END)  # profile on the mid-run state
    rho = np.ascontiguousarray(st.data.reshape(-1, 1)).copy()
    work = fv.make_workspace(eq.shape2d, eq.two_d)
    psi, phi, Fx, Fy, scale, nxt = work[3], work[4], work[5], work[6], work[7], work[2]
    scheme = eq.scheme_tuple(0.9, 0.0)
    h = eq.geom[0]
    n = 2000 if M < 1000 else 500
    comp = {}

    def per(fn):  # micro-benchmarks: minimum over repeats (least disturbed by other load)
        fn(1)
        return time_per_call(lambda: fn(n), max(5, R), budget=0.02, stat=np.min) / n

    comp["compute_psi (V copy, no interaction)"] = per(lambda k: L["psi"](k, eq.inter, rho, eq.V2, psi))
    comp["potential_field (φ = Ψ + T log ρ)"] = per(lambda k: L["pot"](k, rho, psi, eq.log_m2, phi))
    comp["  of which: log() alone"] = per(lambda k: L["log"](k, rho, nxt))
    comp["np.max(ρ) (speed floor)"] = per(lambda k: L["max"](k, rho))
    comp["axis_fluxes (minmod + upwind)"] = per(lambda k: L["axis"](k, rho, phi, h, Fx))
    comp["euler_update (limiter, 2 passes)"] = per(lambda k: L["euler"](k, rho, h, Fx, Fy, scale, nxt))
    comp["check_state"] = per(lambda k: L["check"](k, rho))
    rr = rho.copy()
    nst = len(fv.SSP_TABLES[3])
    total_key = f"rk_step total ({nst} stages, SSPRK({nst},3))"
    comp[total_key] = per(lambda k: L["step"](k, rr, fv.SSP_TABLES[3], eq.inter, eq.V2,
                                                              eq.log_m2, eq.temperature, eq.sched,
                                                              eq.geom, scheme, work))
    stage = (comp["compute_psi (V copy, no interaction)"] + comp["potential_field (φ = Ψ + T log ρ)"]
             + comp["np.max(ρ) (speed floor)"] + comp["axis_fluxes (minmod + upwind)"]
             + comp["euler_update (limiter, 2 passes)"])
    rows = [[k, f"{v * 1e6:.2f}", f"{v / M * 1e9:.1f}", f"{v / stage * 100:.0f}%" if "total" not in k else ""]
            for k, v in comp.items()]
    log("(per-kernel times: minimum over repeats of compiled loops; 'share' is of the sum of the "
        "five per-stage kernels)")
    log(table(["kernel (per call)", "µs", "ns/cell", "share of a stage"], rows))
    h2 = h * h
    diff_steps = math.ceil(T_END / (0.9 * h2 / 2))
    dd = next(r for r in dd_rows if r["M"] == M)
    info = {"M": M, "components_s": comp, "stage_sum_s": stage, "steps": dd["steps"],
            "diffusion_bound_steps": diff_steps,
            "measured_us_per_step": dd["us_per_step"],
            "ns_per_cell_per_stage": dd["us_per_step"] * 1e3 / nst / M}
    extra = ("" if dd["steps"] <= diff_steps else
             " (the extra steps: transport bound from the log-gradient speed in the tails early on)")
    log(f"steps taken {dd['steps']}; the forward-Euler diffusion bound dt <= 0.9·h²/2 alone gives "
        f"{diff_steps} (SSPRK({nst},3) has SSP coefficient 2){extra}")
    log(f"measured {dd['us_per_step']:.1f} µs/step = {info['ns_per_cell_per_stage']:.0f} ns per cell per "
        f"stage; rhs evaluations = {nst} × steps = {nst * dd['steps']}")
    for r in pp_rows:
        if r["target"] == dd["target"]:
            k = r["us_per_step"] * 1e3 / r["M"]
            log(f"py-pde {r['method']} at M={r['M']}: {r['us_per_step']:.2f} µs/step = {k:.1f} ns per cell "
                f"per rhs evaluation; {r['steps']} rhs evaluations")
            info.setdefault("pypde", []).append({"method": r["method"], "M": r["M"],
                                                 "ns_per_cell_per_rhs": k, "steps": r["steps"]})
    return info


# ---------------------------------------------------------------------------------------
# part (b): nonlocal problem, time per step
# ---------------------------------------------------------------------------------------
def part_b(args, R, results):
    log("\n" + "=" * 100)
    log("(b) 1D aggregation W(z) = |z|²/2 - |z| on [-3,3], ρ0 = N(0,1) restricted: "
        "time per SSPRK(4,3) step, dense vs FFT interaction")
    log("=" * 100)
    Ms = [250, 500, 1000] if args.quick else [500, 1000, 2000]
    nsteps = 20 if args.quick else 100
    out = {"M": Ms, "nsteps_target": nsteps, "runs": []}
    kernel = make_kernel("attractive-repulsive", 1)
    rows = []
    for beta in (math.inf, 10.0):
        finals = {}
        for method in ("dense", "fft"):
            per_step = []
            for M in Ms:
                c = cartesian([-3, 3], M)
                x = c.axes[0].centers
                rho0 = np.exp(-x**2 / 2)
                rho0 /= rho0.sum() * c.cell_volume
                m = Model(interaction=kernel, beta=beta)
                t0 = time.perf_counter()
                gm = GridModel(m, c, interaction=method)
                t_build = time.perf_counter() - t0
                eq = DistributionalDynamicsPDE(gm, order=2)
                solver = SSPRKSolver(eq, rk_order=3, cfl=0.9)
                _, crate = eq.rate_data(rho0)
                dt0 = fv.dt_bound(crate, 1.0, eq.temperature, eq.geom, False, 0.9)
                t_end = nsteps * dt0
                state0 = c.field(rho0)
                stepper = solver.make_stepper(state0)
                stepper(state0.copy(), 0.0, dt0)  # warm (compiled code is cached on disk)

                def go(st):
                    solver.info["steps"] = 0
                    stepper(st, 0.0, t_end)
                    return st
                tm, st = timed(go, R, setup=lambda: state0.copy())
                steps = solver.info["steps"]
                us = tm["median"] / steps * 1e6
                per_step.append(us)
                finals[(method, M)] = st.data.copy()
                out["runs"].append({"beta": beta, "method": method, "M": M, "steps": steps,
                                    "us_per_step": us, "time_s": tm, "build_s": t_build,
                                    "dt0": dt0})
                rows.append([("∞" if math.isinf(beta) else f"{beta:g}"), method, M, steps,
                             f"{us:.1f}", f"{us * 1e3 / M:.0f}", fmt_t(t_build)])
            slope = fit_slope(Ms, per_step)
            out.setdefault("slopes", {})[f"{method} beta={beta}"] = slope
            rows.append(["", f"{method}: fitted exponent", "", "", f"M^{slope:.2f}", "", ""])
        agree = max(float(np.max(np.abs(finals[("dense", M)] - finals[("fft", M)]))
                          / np.max(np.abs(finals[("dense", M)]))) for M in Ms)
        out.setdefault("dense_vs_fft_final_state_rel_diff", {})[f"beta={beta}"] = agree
        rows.append(["", f"final state dense vs fft: max rel diff {agree:.1e}", "", "", "", "", ""])
    log(table(["β", "interaction", "M", "steps", "µs/step", "ns/cell/step", "operator build"], rows,
              ["<", "<", ">", ">", ">", ">", ">"]))
    for M in Ms:
        d = next(r for r in out["runs"] if r["M"] == M and r["method"] == "dense" and math.isinf(r["beta"]))
        f = next(r for r in out["runs"] if r["M"] == M and r["method"] == "fft" and math.isinf(r["beta"]))
        log(f"  β=∞, M={M}: dense/fft per-step time ratio {d['us_per_step'] / f['us_per_step']:.1f}")
    results["b"] = out


# ---------------------------------------------------------------------------------------
# part (c): operator application
# ---------------------------------------------------------------------------------------
def _toeplitz_dense(op):
    """The dense K of a ConvolutionInteraction assembled from its convolution vector
    (same cell-averaged entries as DenseInteraction, up to round-off)."""
    kvec = op.kernel_vector
    shape = op.coords.shape
    idx = [np.arange(n) for n in shape]
    if len(shape) == 1:
        d = (idx[0][:, None] - idx[0][None, :]) % kvec.shape[0]
        return kvec[d]
    n0, n1 = shape
    d0 = (idx[0][:, None] - idx[0][None, :]) % kvec.shape[0]   # (n0, n0)
    d1 = (idx[1][:, None] - idx[1][None, :]) % kvec.shape[1]   # (n1, n1)
    K = kvec[d0[:, None, :, None], d1[None, :, None, :]]       # (n0, n1, n0, n1)
    return K.reshape(n0 * n1, n0 * n1)


@nb.njit
def _fft1d_conv(rho, khat, m, vol, out):
    """Reference: the 1D convolution with a bare 1D real FFT in numba (ddsolve's
    compute_psi takes the same path for 1D grids; the difference is its overhead)."""
    conv = np.fft.irfft(np.fft.rfft(rho, m) * khat, m)
    for i in range(rho.size):
        out[i] = vol * conv[i]


def part_c(args, R, results):
    log("\n" + "=" * 100)
    log("(c) interaction operator: gm.operator.apply(rho) and build, dense vs FFT "
        "(W = |z|²/2 - |z|, cells on [-3,3]^d)")
    log("=" * 100)
    kernel1 = make_kernel("attractive-repulsive", 1)
    kernel2 = make_kernel("attractive-repulsive", 2)
    cases = [(n,) for n in ([256, 512, 1024] if args.quick else [256, 512, 1024, 2048, 4096])]
    cases += [(32, 32)] if args.quick else [(64, 64), (128, 128)]
    out = {"cases": []}
    rows = []
    dense_build_64 = None
    for shape in cases:
        nd = len(shape)
        c = cartesian([[-3, 3]] * nd if nd == 2 else [-3, 3], shape if nd == 2 else shape[0])
        m = Model(interaction=kernel2 if nd == 2 else kernel1, ndim=nd)
        x = c.cell_centers()
        rho = np.exp(-np.sum(x**2, axis=-1) / 2)
        rho /= rho.sum() * c.cell_volume
        t0 = time.perf_counter()
        gm_f = GridModel(m, c, interaction="fft")
        tb_f = time.perf_counter() - t0
        big = shape == (128, 128) and not args.dense_build_128
        if big:
            t0 = time.perf_counter()
            K = _toeplitz_dense(gm_f.operator)
            tb_toep = time.perf_counter() - t0
            tb_d = dense_build_64 * 16 if dense_build_64 else float("nan")  # O(M²) work
            note = "build extrapolated ×16 from 64×64; apply on Toeplitz-assembled K"

            def apply_d(r, K=K, vol=c.cell_volume):
                return (K @ r.ravel()).reshape(r.shape) * vol
        else:
            t0 = time.perf_counter()
            gm_d = GridModel(m, c, interaction="dense")
            tb_d = time.perf_counter() - t0
            K = gm_d.operator.K
            apply_d = gm_d.operator.apply
            t0 = time.perf_counter()
            Kt = _toeplitz_dense(gm_f.operator)
            tb_toep = time.perf_counter() - t0
            note = f"Toeplitz K == dense K to {np.max(np.abs(Kt - K)) / np.max(np.abs(K)):.0e}"
            del Kt
            if shape == (64, 64):
                dense_build_64 = tb_d
        a = apply_d(rho)
        bf = gm_f.operator.apply(rho)
        rel = float(np.max(np.abs(a - bf)) / np.max(np.abs(a)))
        t_d = time_per_call(lambda: apply_d(rho), R, budget=0.05 if c.size < 5000 else 0.2)
        t_f = time_per_call(lambda: gm_f.operator.apply(rho), R)
        # the compiled path used inside the stepper (fv.compute_psi, rocket-fft / BLAS)
        inter_f = pack_interaction(gm_f)
        rho2 = np.ascontiguousarray(fv.as_2d(rho))
        V2 = np.zeros_like(rho2)
        psi = np.empty_like(rho2)
        t_cf = time_per_call(lambda: fv.compute_psi(inter_f, rho2, V2, psi), R)
        t_ref = float("nan")
        if nd == 1:
            kv = gm_f.operator.kernel_vector
            khat1 = np.fft.rfft(kv)
            out1 = np.empty(c.size)
            _fft1d_conv(rho, khat1, kv.size, c.cell_volume, out1)
            assert np.max(np.abs(out1 - bf)) <= 1e-12 * np.max(np.abs(bf))
            t_ref = time_per_call(lambda: _fft1d_conv(rho, khat1, kv.size, c.cell_volume, out1), R)
        lab = "×".join(map(str, shape))
        out["cases"].append({"shape": list(shape), "cells": c.size, "apply_dense_s": t_d,
                             "apply_fft_s": t_f, "compute_psi_fft_compiled_s": t_cf,
                             "fft_1d_rfft_reference_s": t_ref,
                             "build_dense_s": tb_d, "build_dense_extrapolated": big,
                             "build_fft_s": tb_f, "toeplitz_assembly_s": tb_toep,
                             "rel_diff": rel, "note": note})
        rows.append([lab, c.size, fmt_t(t_d), fmt_t(t_f), f"{t_d / t_f:.1f}", fmt_t(t_cf), fmt_t(t_ref),
                     ("~" if big else "") + fmt_t(tb_d), fmt_t(tb_f), fmt_t(tb_toep), f"{rel:.1e}"])
        del K
    log(table(["grid", "cells", "apply dense", "apply fft", "dense/fft", "fft compiled", "1D rfft ref",
               "build dense", "build fft", "K from fft-vec", "rel diff"], rows))
    oned = [cc for cc in out["cases"] if len(cc["shape"]) == 1]
    if len(oned) >= 2:
        cells = [cc["cells"] for cc in oned]
        out["slopes_1d"] = {"apply_dense": fit_slope(cells, [cc["apply_dense_s"] for cc in oned]),
                            "apply_fft": fit_slope(cells, [cc["apply_fft_s"] for cc in oned]),
                            "build_dense": fit_slope(cells, [cc["build_dense_s"] for cc in oned])}
        s = out["slopes_1d"]
        log(f"1D fitted exponents: apply dense M^{s['apply_dense']:.2f}, apply fft M^{s['apply_fft']:.2f}, "
            f"build dense M^{s['build_dense']:.2f}")
    for cc in out["cases"]:
        if cc["note"]:
            log(f"  {'×'.join(map(str, cc['shape']))}: {cc['note']}")
    log("'apply dense/fft' = gm.operator.apply (BLAS dgemv / scipy.fft from Python); 'fft compiled' = "
        "fv.compute_psi, what the stepper calls (rocket-fft; a 1D real FFT on 1D grids); "
        "'1D rfft ref' = the bare 1D rfft/irfft convolution in numba; "
        "'K from fft-vec' = dense K gathered from the convolution vector (what DenseInteraction "
        "now does for convolution kernels)")
    results["c"] = out


# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# part (d): work–precision of the time integrators, OU and the Curie–Weiss flagship
# ---------------------------------------------------------------------------------------
# grids of the search: divisors of the Curie–Weiss reference grid (4800), ratio ~1.25
WP_LADDER = [40, 48, 60, 75, 96, 120, 150, 192, 240, 300, 400, 480, 600, 800, 960, 1200, 1600,
             2400]
WP_RTOLS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
WP_PYPDE_TOLS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
WP_INTEGRATORS = ("trbdf2", "esdirk3", "esdirk4", "ark3", "ark4")
WP_MAX_STEPS = 5000  # accepted-step budget of one adaptive run


def _cell_restrict(rho, M):
    """Cell averages of the fine-grid ``rho`` on M cells (M divides len(rho))."""
    return rho.reshape(M, -1).mean(axis=1)


class WPProblem:
    """A 1D problem of the work–precision study: the ddsolve config, py-pde's equation for
    it, and the L1 error of a result on M cells against the exact or reference solution."""

    name = label = ""
    config: dict = {}
    pypde_rhs = ""
    drift_max = 0.0  # max |drift| on the domain (py-pde's explicit transport bound)

    @property
    def t_end(self):
        return self.config["run"]["t_final"]

    @property
    def domain(self):
        return tuple(self.config["grid"]["bounds"])

    @property
    def beta(self):
        return self.config["model"]["beta"]

    def setup(self, M):
        """(GridModel, resolved scheme options, initial cell averages) on M cells."""
        from ddsolve.app.config import build

        cfg = {**self.config, "grid": {**self.config["grid"], "cells": M}}
        s = build(cfg)
        return GridModel(s.model, s.coords), s.config["scheme"], s.initial.values

    def error(self, rho, M):
        raise NotImplementedError


class OUProblem(WPProblem):
    name, label = "ou", "1D Ornstein–Uhlenbeck (part a's problem), t = 1"
    config = {"model": {"problem": "fokker-planck", "potential": "quadratic", "stiffness": 1.0,
                        "beta": 1.0},
              "grid": {"bounds": list(DOMAIN)}, "initial": {"kind": "gaussian", "mean": MEAN0, "std": STD0},
              "run": {"t_final": T_END}}
    pypde_rhs = "laplace(c) + d_dx(c*x)"
    drift_max = 6.0

    def setup(self, M):
        gm, scheme, _ = super().setup(M)
        return gm, scheme, ou_exact(edges_of(M), 0.0)  # exact cell averages, as in part (a)

    def error(self, rho, M):
        return l1_error(rho, M)


class CWProblem(WPProblem):
    """The flagship: V = x⁴/4 - x²/2, U = θ|x-y|²/2, θ = 1, β = 3, N(0.1, 0.5²) on [-3, 3],
    t = 10. Reference: Richardson extrapolation of ESDIRK4 (rtol 1e-10) on 4800 and 9600
    cells, to cell averages on 4800."""

    name, label = "cw", "1D Curie–Weiss double well θ=1, β=3, N(0.1, 0.5²) on [-3,3], t = 10"
    config = {"model": {"problem": "curie-weiss", "potential": "double-well", "theta": 1.0, "beta": 3.0},
              "grid": {"bounds": [-3.0, 3.0]}, "initial": {"kind": "gaussian", "mean": 0.1, "std": 0.5},
              "run": {"t_final": 10.0}}
    pypde_rhs = "laplace(c)/3 + d_dx(c*(x**3 - x + (x - integral(c*x))))"
    drift_max = 27.0
    M_REF = 4800
    _ref = None

    def reference(self):
        if self._ref is None:
            from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver

            sols, t0 = [], time.perf_counter()
            for M in (self.M_REF, 2 * self.M_REF):
                gm, _, rho0 = self.setup(M)
                solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), "esdirk4",
                                          rtol=1e-10, atol=1e-13)
                st = gm.coords.field(rho0.copy())
                solver.make_stepper(st)(st, 0.0, self.t_end)
                sols.append(st.data.copy())
            coarse, fine = sols[0], _cell_restrict(sols[1], self.M_REF)
            h = (self.domain[1] - self.domain[0]) / self.M_REF
            self.ref_diff = float(np.abs(coarse - fine).sum() * h)
            CWProblem._ref = (4 * fine - coarse) / 3
            log(f"  CW reference: ESDIRK4 rtol 1e-10 on {self.M_REF} and {2 * self.M_REF} cells, "
                f"L1 difference {self.ref_diff:.2e} (so the Richardson value is good to well "
                f"below that); {time.perf_counter() - t0:.1f} s")
        return self._ref

    def error(self, rho, M):
        ref = self.reference()
        h = (self.domain[1] - self.domain[0]) / M
        return float(np.abs(rho - _cell_restrict(ref, M)).sum() * h)


class WPMethod:
    """One solver of the study; ``tols`` are its tunable tolerances ([None]: none)."""

    label = ""
    tols = (None,)
    pypde = False

    def make(self, prob, M, tol):
        """(stepper(state, t0, t1), initial state, steps()) — everything built and compiled."""
        raise NotImplementedError


class DdsolveWP(WPMethod):
    """``kind``: ``auto``, ``ssprk``, an integrator, or ``integrator:flux`` (a face flux
    other than the default of ``scheme.flux = auto``)."""

    def __init__(self, kind):
        self.kind, _, self.flux = kind.partition(":")
        self.label = {"auto": "ddsolve auto (defaults)", "ssprk": "ddsolve SSPRK(4,3) explicit"}.get(
            kind, f"ddsolve {self.kind}" + (f" ({self.flux})" if self.flux else ""))
        if self.kind in WP_INTEGRATORS:
            self.tols = tuple(WP_RTOLS)

    def make(self, prob, M, tol):
        from ddsolve.schemes.fv.auto import choose_time
        from ddsolve.schemes.registry import make_stepper

        gm, scheme, rho0 = prob.setup(M)
        if self.kind == "auto":  # what ``ddsolve run`` does with the default [scheme]
            mode, reason = choose_time(gm, scheme, rho0, prob.t_end)
            options = {**scheme, "time": mode, "time_reason": reason}
        elif self.kind == "ssprk":
            options = {**scheme, "time": "explicit"}
        else:
            options = {**scheme, "time": "implicit", "integrator": self.kind, "rtol": tol,
                       "atol": 1e-3 * tol}
            if self.flux:
                options["flux"] = self.flux
        _, solver = make_stepper(gm, options)
        state0 = gm.coords.field(rho0.copy())
        explicit = options["time"] == "explicit"
        if not explicit:  # a run that exhausts the step budget counts as failed, not as slow
            solver.max_steps = WP_MAX_STEPS
        stepper = solver.make_stepper(state0.copy())

        def run(st, t0, t1):
            if explicit:
                solver.info["steps"] = 0
                return stepper(st, t0, t1)
            # the adaptive stepper keeps its step size between calls: start each run afresh
            return solver.make_stepper(st)(st, t0, t1)
        return run, state0, lambda: int(solver.info["steps"])


class PyPDEWP(WPMethod):
    """py-pde's generic ``pde.PDE`` with the numba backend (boundary conditions of part a)."""

    pypde = True
    _eqs: dict = {}

    def __init__(self, adaptive):
        self.adaptive = adaptive
        self.label = "py-pde Euler adaptive" if adaptive else "py-pde Euler at the bound"
        if adaptive:
            self.tols = tuple(WP_PYPDE_TOLS)

    def make(self, prob, M, tol):
        key = (prob.name, M)
        if key not in self._eqs:
            g = pde.CartesianGrid([list(prob.domain)], M)
            self._eqs[key] = (g, pde.PDE({"c": prob.pypde_rhs}, **PyPDEOU.BC))
        g, eq = self._eqs[key]
        _, _, rho0 = prob.setup(M)
        h = (prob.domain[1] - prob.domain[0]) / M
        # explicit Euler: 0.9 of the diffusion bound h²β/2 and of the transport bound h/|u|
        bound = 0.9 * min(h * h * prob.beta / 2, h / prob.drift_max)
        if self.adaptive:
            solver = pde.EulerSolver(eq, backend="numba", adaptive=True, tolerance=tol)
            dt = 0.5 * bound
        else:
            solver = pde.EulerSolver(eq, backend="numba")
            dt = prob.t_end / math.ceil(prob.t_end / bound)
        state0 = pde.ScalarField(g, rho0)
        stepper = solver.make_stepper(state0, dt=dt)  # JIT-compiles here

        def run(st, t0, t1):
            solver.info["steps"] = 0
            solver.info["dt"] = dt
            return stepper(st, t0, t1)
        return run, state0, lambda: int(solver.info["steps"])


def _coarsest_index(ok, n, i):
    """Smallest index j in [0, n) with ok(j), assuming ok is monotone, starting from the guess
    i (gallop, then bisect); None if none passes."""
    i = int(np.clip(i, 0, n - 1))
    if ok(i):
        hi, lo, step = i, -1, 1
        while hi - step >= 0:
            j = hi - step
            if ok(j):
                hi, step = j, step * 2
            else:
                lo = j
                break
    else:
        lo, hi, step = i, None, 1
        while hi is None:
            j = min(lo + step, n - 1)
            if ok(j):
                hi = j
            elif j == n - 1:
                return None
            else:
                lo, step = j, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def work_precision(prob, methods, targets, R, max_run_s, out):
    """For every method, target and tolerance: the coarsest grid of WP_LADDER reaching the
    target; that configuration is timed (stepping only, median of warm repeats) and the
    fastest tolerance kept. Returns rows of the fastest configuration per method and target."""
    evaluated = {}  # (label, tol, M) -> result
    built = {}

    def evaluate(meth, tol, M):
        key = (meth.label, tol, M)
        if key not in evaluated:
            t0 = time.perf_counter()
            run, state0, steps = meth.make(prob, M, tol)
            t_make = time.perf_counter() - t0
            st = state0.copy()
            t0 = time.perf_counter()
            try:
                t_reached = run(st, 0.0, prob.t_end)
                ok = abs(t_reached - prob.t_end) < 1e-9 and np.all(np.isfinite(st.data))
            except Exception as exc:  # a failed run counts as not reaching any target
                log(f"    {meth.label} tol={tol} M={M}: failed ({exc})")
                ok = False
            t_run = time.perf_counter() - t0
            err = prob.error(st.data, M) if ok else math.inf
            evaluated[key] = {"M": M, "tol": tol, "l1": err, "steps": steps(), "first_run_s": t_run,
                              "make_s": t_make}
            built[key] = (run, state0)
        return evaluated[key]

    rows = []
    guesses = {}
    for target in targets:
        for meth in methods:
            best = None
            tols = meth.tols
            if meth.pypde and meth.tols != (None,):
                # py-pde re-JITs per grid: search the grid at the tightest tolerance, then
                # take the loosest tolerance still passing there (part a's procedure)
                tols = (min(meth.tols),)
            for tol in tols:
                g = guesses.get((meth.label, tol))
                i0 = 0 if g is None else np.searchsorted(WP_LADDER, g * 0.8)
                j = _coarsest_index(lambda k: evaluate(meth, tol, WP_LADDER[k])["l1"] <= target
                                    and evaluate(meth, tol, WP_LADDER[k])["first_run_s"] < max_run_s,
                                    len(WP_LADDER), i0)
                if j is None:
                    continue
                M = WP_LADDER[j]
                guesses[(meth.label, tol)] = M
                cand = [tol]
                if meth.pypde and meth.tols != (None,):
                    cand = sorted(meth.tols, reverse=True)
                for tt in cand:
                    res = evaluate(meth, tt, M)
                    if res["l1"] <= target:
                        break
                run, state0 = built[(meth.label, tt, M)]
                reps = R if res["first_run_s"] < 1.0 else 3
                # warm-up calls first, for every method alike: after the other methods' runs
                # a run of tens of µs took 2-3 calls to get back to speed (samples of 28, 23,
                # 20, 14, 11 µs in one median, measured), which a median of five then reports
                warm = 3 if res["first_run_s"] < 0.1 else 0
                tm, _ = timed(lambda st: run(st, 0.0, prob.t_end), reps, setup=state0.copy, warmup=warm)
                row = {"problem": prob.name, "target": target, "method": meth.label, "tol": tt, **res,
                       "step_only_s": tm}
                if best is None or tm["median"] < best["step_only_s"]["median"]:
                    best = row
            if best is None:
                log(f"  {meth.label}: target {target:.0e} not reached on the ladder within "
                    f"{max_run_s:g} s per run")
                continue
            rows.append(best)
            log(f"  {target:.0e} {meth.label:30s} tol={best['tol']!s:8s} M={best['M']:5d} "
                f"L1={best['l1']:.2e} steps={best['steps']:7d} {fmt_t(best['step_only_s']['median'])}")
    out.setdefault("evaluated", {})[prob.name] = [dict(v, method=k[0]) for k, v in evaluated.items()]
    compile_times = [v["make_s"] for k, v in evaluated.items() if k[0].startswith("py-pde")]
    if compile_times:
        out.setdefault("pypde_make_stepper_s", {})[prob.name] = {
            "median": float(np.median(compile_times)), "max": float(max(compile_times)),
            "n": len(compile_times)}
    return rows


def part_d(args, R, results):
    log("=" * 100)
    log("(d) work–precision of the time integrators: coarsest grid (and loosest tolerance) "
        "reaching each L1 target, stepping only")
    log("=" * 100)
    targets = args.targets or ([1e-3] if args.quick else [1e-3, 1e-4, 1e-5])
    # esdirk3 with the log-mean flux: what the default flux choice gains on linear problems
    kinds = ["auto", "esdirk3"] if args.quick else ["auto", *WP_INTEGRATORS, "esdirk3:logmean", "ssprk"]
    methods = [DdsolveWP(k) for k in kinds] + [PyPDEWP(False)] + ([] if args.quick else [PyPDEWP(True)])
    problems = [OUProblem()] if args.quick else [OUProblem(), CWProblem()]
    out = {"targets": targets, "rows": []}
    for prob in problems:
        log(f"\n-- {prob.label}")
        if isinstance(prob, CWProblem):
            prob.reference()
            out["cw_reference_diff"] = prob.ref_diff
        rows = work_precision(prob, methods, targets, R, 15.0 if not args.quick else 2.0, out)
        out["rows"] += rows
        trows, ratios = [], []
        for target in targets:
            rt = [r for r in rows if r["target"] == target]
            pp = [r for r in rt if r["method"].startswith("py-pde")]
            if not pp:
                continue
            fastest_pp = min(pp, key=lambda r: r["step_only_s"]["median"])
            for r in rt:
                ratio = fastest_pp["step_only_s"]["median"] / r["step_only_s"]["median"]
                r["ratio_vs_fastest_pypde"] = ratio
                trows.append([f"{target:.0e}", r["method"], "" if r["tol"] is None else f"{r['tol']:g}",
                              r["M"], r["steps"], f"{r['l1']:.2e}", fmt_t(r["step_only_s"]["median"]),
                              f"{ratio:.2f}"])
            dd = [r for r in rt if r["method"].startswith("ddsolve")]
            auto = next((r for r in dd if "auto" in r["method"]), None)
            best_dd = min(dd, key=lambda r: r["step_only_s"]["median"]) if dd else None
            ratios.append({"problem": prob.name, "target": target, "fastest_pypde": fastest_pp["method"],
                           "auto": auto and auto["ratio_vs_fastest_pypde"],
                           "best_ddsolve": best_dd and best_dd["method"],
                           "best": best_dd and best_dd["ratio_vs_fastest_pypde"]})
        log(f"\n{prob.label}: fastest configuration per method (ratio = fastest py-pde time / "
            "this time; > 1 means faster than py-pde)")
        log(table(["target", "method", "tol", "M", "steps", "L1 err", "step-only", "ratio"], trows,
                  ["<", "<", "<", ">", ">", ">", ">", ">"]))
        out.setdefault("ratios", []).extend(ratios)
    log("\nSummary: speed-up over the fastest py-pde configuration at equal L1 error (target 10x)")
    log(table(["problem", "target", "fastest py-pde", "ddsolve auto", "best ddsolve", "best ratio"],
              [[r["problem"], f"{r['target']:.0e}", r["fastest_pypde"],
                "-" if r["auto"] is None else f"{r['auto']:.1f}x", r["best_ddsolve"] or "-",
                "-" if r["best"] is None else f"{r['best']:.1f}x"] for r in out.get("ratios", [])]))
    if "pypde_make_stepper_s" in out:
        for name, c in out["pypde_make_stepper_s"].items():
            log(f"py-pde stepper JIT ({name}): median {c['median']:.1f} s, max {c['max']:.1f} s over "
                f"{c['n']} grids/tolerances (not included above; py-pde does not cache it on disk)")
    results["d"] = out


def main():
    args = ARGS
    R = args.repeats or (5 if args.quick else 7)
    t_start = time.perf_counter()
    meta = run_meta({"numpy": np.__version__, "numba": nb.__version__, "py-pde": pde.__version__,
                     "ddsolve": ddsolve.__version__}, args.blas_threads, quick=args.quick, repeats=R)
    log(f"bench_fv: python {meta['python']}, numpy {meta['numpy']}, numba {meta['numba']}, "
        f"py-pde {meta['py-pde']}, ddsolve {meta['ddsolve']}; {meta['cpus']} CPUs, "
        f"load {meta['loadavg_start'][0]:.2f}; BLAS threads: {meta['blas_threads']}; "
        f"repeats {R}{' (quick)' if args.quick else ''}")
    # make sure ddsolve's compiled kernels are loaded (disk cache) before timing anything
    t0 = time.perf_counter()
    m = DdsolveOU()
    b = m.build(50)
    m.stepper(b)[0](b["state0"].copy(), 0.0, 0.01)
    if "d" in args.parts:
        # and the implicit and IMEX paths of part (d)'s problems: a cold compile (a minute)
        # inside the grid search would count as a run over its time limit
        for prob in (OUProblem(), CWProblem()):
            for kind in ("esdirk4", "ark4"):
                run, state0, _ = DdsolveWP(kind).make(prob, 40, 1e-3)
                run(state0.copy(), 0.0, 0.01)
    meta["ddsolve_first_call_s"] = time.perf_counter() - t0
    results = {"meta": meta}
    run_parts((("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d)), args.parts, meta, args, R, results)
    finish(meta, t_start)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
