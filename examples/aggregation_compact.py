"""Aggregation with W(z) = |z|^2/2 - |z| (no diffusion): a Gaussian converges to the
uniform density 1/2 on an interval of length 2 (Carrillo, Chertock & Huang 2015, Ex. 4).

Prints, at a few times, the plateau height, three measures of the support length
(cells above 1% of the plateau, width at half the plateau, sqrt(12 Var)), and the L1
distance to the exact steady state 1/2 on [c - 1, c + 1] (c the mean).
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.results import run_example

CONFIG = Path(__file__).with_name("aggregation_compact.toml")


def steady_state(edges, c):
    """Cell averages of 1/2 on [c - 1, c + 1]."""
    overlap = np.clip(np.minimum(edges[1:], c + 1) - np.maximum(edges[:-1], c - 1), 0, None)
    return 0.5 * overlap / np.diff(edges)


def half_width(x, rho, level):
    """Distance between the outermost crossings of ``level`` (linear interpolation)."""
    i = np.flatnonzero(rho >= level)
    lo, hi = i[0], i[-1]
    xl = x[lo - 1] + (level - rho[lo - 1]) / (rho[lo] - rho[lo - 1]) * (x[lo] - x[lo - 1])
    xr = x[hi] + (level - rho[hi]) / (rho[hi + 1] - rho[hi]) * (x[hi + 1] - x[hi])
    return xr - xl


if __name__ == "__main__":
    run = run_example(CONFIG, __doc__)
    out = run.path
    ax = run.setup.coords.axes[0]
    x, h, edges = ax.centers, ax.spacing, ax.edges
    times, data = run.times, run.densities()

    print("    t   plateau  |supp|(>1%)  width@half  sqrt(12Var)   L1 to steady state")
    for tt in (0.0, 2.0, 4.0, 8.0, times[-1]):
        i = int(np.argmin(abs(times - tt)))
        rho = data[i]
        c = h * (x * rho).sum()
        var = h * ((x - c) ** 2 * rho).sum()
        plateau = rho[np.abs(x - c) < 0.8].mean()
        supp = h * (rho > 0.01 * plateau).sum()
        width = half_width(x, rho, plateau / 2)
        l1 = h * np.abs(rho - steady_state(edges, c)).sum()
        print(f"{times[i]:5.1f}   {plateau:.5f}   {supp:8.3f}    {width:9.5f}   {np.sqrt(12 * var):10.5f}"
              f"   {l1:.2e}")
    print("exact: plateau 0.5, support length 2 (sqrt(12 Var) = 2 for the uniform law)")
    energy = run.diagnostics["energy"][-1]
    print(f"final energy {energy:.6f} vs exact -1/6 = {-1 / 6:.6f} for 1/2 on [-1, 1]")
    print(f"max density at t={times[-1]:g}: {data[-1].max():.4f} (overshoot in the edge cells), "
          f"grid h = {h:.3g}")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    for k, tt in enumerate((0.0, 0.5, 1.0, 2.0, 4.0, times[-1])):
        i = int(np.argmin(abs(times - tt)))
        a1.plot(x, data[i], color=f"C{k}", label=f"t = {times[i]:g}")
    a1.plot(x, steady_state(edges, 0.0), "k--", lw=1, label="exact steady state")
    a1.set(xlabel="x", ylabel="density", title="aggregation, W(z) = |z|²/2 − |z|")
    a1.legend(fontsize="small")
    l1 = [h * np.abs(d - steady_state(edges, h * (x * d).sum())).sum() for d in data]
    a2.semilogy(times, l1, "o-", ms=3)
    a2.set(xlabel="t", ylabel="L1 distance to the steady state", title="convergence")
    fig.savefig(out / "aggregation_compact.png", dpi=110)
    print(f"figure: {out / 'aggregation_compact.png'}")
