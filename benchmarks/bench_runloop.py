#!/usr/bin/env python
"""What reliability costs: the time loop of ``ddsolve run`` (pauses, checkpoints, durable
snapshots) against py-pde's ``Controller`` driving the same solver.

Baseline (``controller``): ``pde.Controller(solver, t_range, tracker=FileStorage tracker)``,
the loop ``ddsolve run`` used before, stepping the same compiled solver and storing the
same snapshots (py-pde's FileStorage, written at the end).

Measured, for the Curie-Weiss flagship (double well, theta = 1, beta = 3, 300 cells,
``--t-final``, a snapshot every 0.5) with explicit SSPRK(4,3) and with ESDIRK3 at rtol 1e-7:

* ``timeloop``: :class:`ddsolve.app.timeloop.TimeLoop` with pauses every ~0.2 s, a
  flushed snapshot at every save time, no checkpoint (``checkpoint_every = inf``);
* ``timeloop+ckpt``: the same with a checkpoint (``checkpoint.npz``, fsync) every 0.05 s,
  1200 times more often than the default of 60 s, to make its cost visible.

Interleaved rounds, median of ``--repeats``; the ratio is time / controller. Run
``python benchmarks/bench_runloop.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

from _harness import add_blas_threads_arg, add_common_args, fmt_t, log, make_parser, set_blas_threads, table

if __name__ == "__main__":
    parser = make_parser(__doc__)
    add_common_args(parser)
    add_blas_threads_arg(parser, 1, "BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--t-final", type=float, default=20.0)
    args = parser.parse_args()
    set_blas_threads(args.blas_threads)

import numpy as np  # noqa: E402
import pde  # noqa: E402
from pde.trackers.interrupts import FixedInterrupts  # noqa: E402

from ddsolve import GridModel, Model, cartesian  # noqa: E402
from ddsolve.app.checkpoint import write_checkpoint  # noqa: E402
from ddsolve.app.io import DurableFileStorage, save_times  # noqa: E402
from ddsolve.app.lifecycle import StopRequest  # noqa: E402
from ddsolve.app.timeloop import TimeLoop  # noqa: E402
from ddsolve.model import DoubleWellPotential, QuadraticKernel  # noqa: E402
from ddsolve.schemes import make_stepper  # noqa: E402

SCHEMES = {"explicit SSPRK(4,3)": {"name": "fv", "time": "explicit"},
           "ESDIRK3 rtol 1e-7": {"name": "fv", "time": "implicit", "integrator": "esdirk3", "rtol": 1e-7,
                                 "atol": 1e-10}}


def problem(cells: int = 300):
    coords = cartesian([-3.0, 3.0], cells)
    gm = GridModel(Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(1.0), beta=3.0), coords)
    x = coords.cell_centers()[..., 0]
    rho = np.exp(-((x - 0.1) ** 2) / 0.5)
    return gm, rho / gm.mass(rho)


def with_controller(gm, rho0, options, times, folder: Path) -> np.ndarray:
    _, solver = make_stepper(gm, dict(options))
    storage = pde.FileStorage(folder / "controller.h5", write_mode="truncate")
    controller = pde.Controller(solver, t_range=float(times[-1]), tracker=[storage.tracker(FixedInterrupts(times))])
    final = controller.run(gm.coords.field(rho0.copy()))
    storage.close()
    return final.data


def with_timeloop(gm, rho0, options, times, folder: Path, checkpoint_every: float) -> np.ndarray:
    _, solver = make_stepper(gm, dict(options))
    state = gm.coords.field(rho0.copy())
    stepper = solver.make_stepper(state)
    storage = DurableFileStorage(folder / "timeloop.h5", write_mode="truncate")
    storage.start_writing(state)

    def checkpoint(t, next_index):
        write_checkpoint(folder / "checkpoint.npz", {"t": t, "next_save": next_index},
                         {"density": state.data, **{f"solver.{k}": v for k, v in solver.checkpoint_state().items()}})

    stop = StopRequest()
    loop = TimeLoop(solver, stepper, times, save=lambda s, t: storage.append(s, time=t), stop=stop,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    with stop.installed():
        loop.run(state, 0.0, 0)
    storage.end_writing()
    storage.close()
    return state.data


def main() -> None:
    gm, rho0 = problem()
    times = save_times(args.t_final, 0.5)
    repeats = 2 if args.quick else args.repeats
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, options in SCHEMES.items():
            variants = {"controller": lambda: with_controller(gm, rho0, options, times, folder),
                        "timeloop": lambda: with_timeloop(gm, rho0, options, times, folder, math.inf),
                        "timeloop+ckpt": lambda: with_timeloop(gm, rho0, options, times, folder, 0.05)}
            finals = {k: fn() for k, fn in variants.items()}  # warm-up (numba cache loads)
            for k in finals:
                assert np.array_equal(finals[k], finals["controller"]), k  # the same steps
            walls: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(repeats):  # interleaved rounds
                for k, fn in variants.items():
                    t0 = time.perf_counter()
                    fn()
                    walls[k].append(time.perf_counter() - t0)
            base = float(np.median(walls["controller"]))
            for k in variants:
                med = float(np.median(walls[k]))
                rows.append((name, k, fmt_t(med), f"{med / base:.3f}"))
    log(f"Curie-Weiss, 300 cells, t_final = {args.t_final:g}, {len(times)} snapshots; median of {repeats}; "
        "final states identical bit for bit")
    log(table(["scheme", "loop", "wall", "ratio to controller"], rows))


if __name__ == "__main__":
    sys.exit(main())
