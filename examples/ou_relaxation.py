"""1D Ornstein-Uhlenbeck relaxation vs the exact Gaussian solution.

Runs ou_relaxation.toml, compares the saved densities with the exact cell averages
of N(m(t), v(t)), and checks that F(t) - F_inf decays like e^{-2t} at late times
(the relative entropy of N(m, v) w.r.t. N(0, 1) is (m^2 + v - 1 - log v)/2 ~ m^2/2).
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.results import run_example
from ddsolve.laws.exact import gaussian_cell_averages, ou_moments

CONFIG = Path(__file__).with_name("ou_relaxation.toml")

if __name__ == "__main__":
    run = run_example(CONFIG, __doc__)
    out = run.path
    setup, gm = run.setup, run.grid_model()
    edges = setup.coords.axes[0].edges
    x, h = setup.coords.axes[0].centers, setup.coords.spacing[0]
    init = setup.config["initial"]
    m0, s0 = init["mean"], init["std"]
    times, data = run.times, run.densities()

    def exact(t):
        m, v = ou_moments(1.0, [m0], [[s0**2]], t, beta=1.0)
        return gaussian_cell_averages(edges, m[0], np.sqrt(v[0, 0]))

    print("    t     L1 error vs exact")
    for t in (0.5, 1.0, 2.0, 4.0, times[-1]):
        i = int(np.argmin(abs(times - t)))
        print(f"{times[i]:6.2f}    {h * np.abs(data[i] - exact(times[i])).sum():.2e}")

    t, F = run.diagnostics["t"], run.diagnostics["free_energy"]
    F_inf = gm.free_energy(gm.gibbs())           # discrete Gibbs state: the scheme's limit
    dF = F - F_inf
    print(f"F(0) = {F[0]:.6f}, F(T) = {F[-1]:.6f}, F_inf (discrete Gibbs) = {F_inf:.6f}, "
          f"exact -log sqrt(2 pi) = {-0.5 * np.log(2 * np.pi):.6f}")
    print(f"F decreasing: {bool(np.all(np.diff(F) <= 1e-12))}")
    late = (t >= 2.0) & (t <= 5.0)
    rate = -np.polyfit(t[late], np.log(dF[late]), 1)[0]
    print(f"late-time decay rate of F - F_inf (fit on 2 <= t <= 5): {rate:.4f}  (predicted 2)")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for k, tt in enumerate((0.0, 0.5, 1.0, 2.0, times[-1])):
        i = int(np.argmin(abs(times - tt)))
        c = f"C{k}"
        ax1.plot(x, data[i], color=c, lw=2, alpha=0.6, label=f"ddsolve t={times[i]:g}")
        ax1.plot(x, exact(times[i]), "k--", lw=1, label="exact" if k == 0 else None)
    ax1.set(xlabel="x", ylabel="density", xlim=(-4, 4), title="OU: density vs exact Gaussian")
    ax1.legend(fontsize="small")
    ax2.semilogy(t[1:], dF[1:], "o-", ms=3, label=r"$F(t)-F_\infty$")
    ax2.semilogy(t, dF[late][0] * np.exp(-2 * (t - t[late][0])), "k--", label=r"$\propto e^{-2t}$")
    ax2.set(xlabel="t", ylabel=r"$F(t) - F_\infty$", title=f"free-energy decay (fitted rate {rate:.3f})")
    ax2.legend()
    fig.savefig(out / "ou_relaxation.png", dpi=110)
    print(f"figure: {out / 'ou_relaxation.png'}")
