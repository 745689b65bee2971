"""SGD on the finite network against the mean-field PDE: risk curves and the 1/N gap.

Runs sgd_vs_pde.toml with ``ddsolve run`` (reduced PDE on r = |w|, 800 cells) and with
``ddsolve particles`` for N = 200, 800, 3200 neurons (online SGD, eps = 5e-5, 2e5 steps,
full vectors w_i in R^40, exact population risk of the finite network). The finite-N risk
is R_N = R# + (2/N) sum_i V(w_i) + (1/N^2) sum_ij U(w_i, w_j): besides the O(N^-1/2)
fluctuations it carries the diagonal terms i = j, so R_N - R_PDE ~ c/N with
c = int U(w, w) rho(dw) - iint U rho rho > 0, plus a bias b of the finite step eps (and of
the grid) that does not depend on N. The script fits R_N - R_PDE = c/N + b at t = 10 and
saves the risk curves and the final laws of r = |w|.
"""
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.io import read_diagnostics
from ddsolve.app.results import example_out, load_run, run_or_exit
from particles.storage import load_particles

CONFIG = Path(__file__).with_name("sgd_vs_pde.toml")
WIDTHS = (200, 800, 3200)

if __name__ == "__main__":
    out = example_out(__doc__, "runs/sgd_vs_pde")
    run_or_exit("run", str(CONFIG), "--out", str(out / "pde"))
    pde_d = read_diagnostics(out / "pde" / "diagnostics.csv")
    r_pde = pde_d["risk"][-1]
    print(f"PDE: risk(t=1) = {np.interp(1.0, pde_d['t'], pde_d['risk']):.5f}, risk(t=10) = {r_pde:.5f}")
    print("   N    risk(t=1)   risk(t=10)   N (R_N - R_PDE) at t = 10   wall [s]")
    curves = {}
    for n in WIDTHS:
        where = out / f"sgd_N{n}"
        run_or_exit("particles", str(CONFIG), "--out", str(where),
                    "--set", f"particles.n={n}")
        d = read_diagnostics(where / "diagnostics.csv")
        curves[n] = d
        wall = json.loads((where / "summary.json").read_text())["wall_time"]
        print(f"{n:5d}   {np.interp(1.0, d['t'], d['risk']):.5f}     {d['risk'][-1]:.5f}      "
              f"{n * (d['risk'][-1] - r_pde):8.3f}                 {wall:6.1f}")

    gaps = np.array([curves[n]["risk"][-1] - r_pde for n in WIDTHS])
    (c, b), *_ = np.linalg.lstsq(np.stack([1 / np.array(WIDTHS), np.ones(len(WIDTHS))], 1), gaps, rcond=None)
    fit = c / np.array(WIDTHS) + b
    print(f"fit R_N - R_PDE = c/N + b: c = {c:.3f}, b = {b:.2e} (eps = 5e-5, d = 40); "
          f"largest misfit {np.abs(fit - gaps).max():.1e}")

    run = load_run(out / "pde")
    r, edges = run.setup.coords.axes[0].centers, run.setup.coords.axes[0].edges
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.loglog(pde_d["t"][1:], pde_d["risk"][1:], "k-", lw=2, label="PDE")
    for k, (n, d) in enumerate(curves.items()):
        ax1.loglog(d["t"][1:], d["risk"][1:], "o", ms=3, color=f"C{k}", label=f"SGD, N = {n}")
    ax1.set(xlabel="t = steps x eps", ylabel="population risk", title="d = 40, non-monotone sigma")
    ax1.legend()
    final = load_particles(out / f"sgd_N{WIDTHS[-1]}").coordinates[-1, :, 0]
    ax2.hist(final, bins=edges[::2], density=True, histtype="step", color="C2",
             label=f"SGD, N = {WIDTHS[-1]}, |w_i|")
    ax2.plot(r, run.densities()[-1], "k-", lw=1.5, label="PDE")
    ax2.set(xlabel="r = |w|", ylabel="density at t = 10", xlim=(1.5, 2.7))
    ax2.legend()
    fig.savefig(out / "sgd_vs_pde.png", dpi=110)
    print(f"figure: {out / 'sgd_vs_pde.png'}")
