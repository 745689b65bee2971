"""2D Fokker-Planck in the (scaled) Mueller-Brown potential.

From the uniform law the density first collects in the three basins, then the basin
populations equilibrate (barrier crossings, ~3.5 kT) to the discrete Gibbs state. Prints
the basin populations (basins of attraction of discrete steepest descent on the cell
values of V) against the Gibbs ones, and the distance to the Gibbs state.
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.results import run_example

CONFIG = Path(__file__).with_name("muller_brown_2d.toml")


def basins(V):
    """Label of the local minimum that steepest descent over the 8 neighbours reaches."""
    n0, n1 = V.shape
    P = np.pad(V, 1, constant_values=np.inf)
    I = np.pad(np.arange(V.size).reshape(V.shape), 1)
    sl = [(slice(1 + a, 1 + a + n0), slice(1 + b, 1 + b + n1)) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    best = np.stack([P[s] for s in sl]).argmin(0)
    nxt = np.stack([I[s] for s in sl])[best, np.arange(n0)[:, None], np.arange(n1)].ravel()
    while not np.array_equal(nxt[nxt], nxt):
        nxt = nxt[nxt]
    return np.unique(nxt, return_inverse=True)


if __name__ == "__main__":
    run = run_example(CONFIG, __doc__)
    out = run.path
    gm, coords, diag = run.grid_model(), run.setup.coords, run.diagnostics
    gibbs, dA = gm.gibbs(), float(np.prod(coords.spacing))
    times, data = run.times, run.densities()

    sinks, label = basins(gm.V)
    centers, scale = coords.cell_centers().reshape(-1, 2), run.setup.config["model"]["scale"]
    pops = lambda rho: [dA * rho.ravel()[label == k].sum() for k in range(len(sinks))]  # noqa: E731
    shown = [0, int(np.argmin(abs(times - 1.0))), len(times) - 1]
    print("basin minimum (x, y)  V/s     " + "  ".join(f"t={times[i]:<5g}" for i in shown) + "  Gibbs")
    for k, s in enumerate(sinks):
        row = "  ".join(f"{pops(data[i])[k]:7.4f}" for i in shown)
        print(f"({centers[s, 0]:+.2f}, {centers[s, 1]:+.2f})      {gm.V.ravel()[s] / scale:8.2f}"
              f"  {row}  {pops(gibbs)[k]:.4f}")
    dF = diag["free_energy"] - gm.free_energy(gibbs)
    l1 = [dA * np.abs(d - gibbs).sum() for d in data]
    late = diag["t"] >= times[-1] / 2
    rate = -np.polyfit(diag["t"][late], np.log(dF[late]), 1)[0]
    print(f"t={times[-1]:g}: L1 to Gibbs {l1[-1]:.2e}, F - F_inf {dF[-1]:.2e} "
          f"(late decay rate {rate:.3f}), mass drift {abs(diag['mass'][-1] - 1):.1e}")

    a, b = coords.axes
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axs = fig.subplots(1, 3)
    levels = np.linspace(gm.V.min(), gm.V.min() + 7.0, 15)    # 0.5 kT spacing (beta = 1)
    for ax, i in zip(axs[:2], shown[1:]):
        im = ax.pcolormesh(a.edges, b.edges, data[i].T, cmap="viridis", shading="flat")
        ax.contour(a.centers, b.centers, gm.V.T, levels=levels, colors="w", linewidths=0.5,
                   linestyles="solid")
        ax.plot(centers[sinks, 0], centers[sinks, 1], "r+", ms=10)
        fig.colorbar(im, ax=ax, label="density")
        ax.set(xlabel="x", ylabel="y", title=f"density at t = {times[i]:g} (contours: V, 0.5 kT)")
    axs[2].semilogy(diag["t"], dF, "o-", ms=3, label=r"$F(t) - F_\infty$")
    axs[2].semilogy(times, l1, "s-", ms=3, label="L1 distance to Gibbs")
    axs[2].set(xlabel="t", ylabel="distance to equilibrium", title="relaxation (inter-basin)")
    axs[2].legend()
    fig.savefig(out / "muller_brown_2d.png", dpi=110)
    print(f"figure: {out / 'muller_brown_2d.png'}")
