"""Mean-field particles vs the PDE: Curie-Weiss symmetry breaking at beta = 3.

Runs particles_curie_weiss.toml twice, with ``ddsolve run`` (finite volumes, 150 cells)
and ``ddsolve particles`` (N = 20000, Heun, O(N) Curie-Weiss force), then compares the
magnetisation m(t) and the final law. Both start from the same discrete initial law and
select the same well. The symmetric state is unstable, so the O(N^-1/2) sampling
difference of the initial magnetisations is amplified while m(t) grows (|diff| ~ 1e-2 at
t = 2..10 for a 2e-3 initial difference) and shrinks again once both sit in the well; at
t = 30 m(t) agrees to the particle noise and the law to the histogram noise.
"""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.io import read_diagnostics
from ddsolve.app.results import example_out, load_run, run_or_exit
from particles.storage import load_particles

CONFIG = Path(__file__).with_name("particles_curie_weiss.toml")

if __name__ == "__main__":
    out = example_out(__doc__, "runs/particles_curie_weiss")
    run_or_exit("run", str(CONFIG), "--out", str(out / "pde"))
    run_or_exit("particles", str(CONFIG), "--out", str(out / "particles"))

    pde_d = read_diagnostics(out / "pde" / "diagnostics.csv")
    par_d = read_diagnostics(out / "particles" / "diagnostics.csv")
    n = load_particles(out / "particles").coordinates.shape[1]
    print("    t    m (PDE)     m (particles)   |diff|   (noise scale sqrt(Var/N) ~ "
          f"{np.sqrt(np.mean(par_d['m2_x'] - par_d['mean_x']**2) / n):.1e})")
    for t in (0.0, 2.0, 5.0, 10.0, 20.0, 30.0):
        i, j = np.argmin(abs(pde_d["t"] - t)), np.argmin(abs(par_d["t"] - t))
        print(f"{t:6.1f}  {pde_d['mean_x'][i]: .6f}   {par_d['mean_x'][j]: .6f}      "
              f"{abs(pde_d['mean_x'][i] - par_d['mean_x'][j]):.1e}")
    print(f"energy at t = 30: PDE {pde_d['energy'][-1]:.6f}, particles {par_d['energy'][-1]:.6f}")

    run = load_run(out / "pde")
    x, h = run.setup.coords.axes[0].centers, run.setup.coords.spacing[0]
    edges = run.setup.coords.axes[0].edges
    final = load_particles(out / "particles").coordinates[-1, :, 0]
    hist = np.histogram(final, bins=edges)[0] / (final.size * h)
    l1 = h * np.abs(hist - run.densities()[-1]).sum()
    print(f"L1(histogram on the PDE cells, PDE density) at t = 30: {l1:.3f} "
          f"(histogram noise alone ~ {np.sqrt(2 * 150 / (np.pi * n)):.3f})")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(pde_d["t"], pde_d["mean_x"], "k-", lw=2, label="PDE (150 cells)")
    ax1.plot(par_d["t"], par_d["mean_x"], "o", ms=3, color="C1", label=f"particles (N = {n})")
    ax1.set(xlabel="t", ylabel="magnetisation m(t)", title="Curie-Weiss, beta = 3")
    ax1.legend()
    ax2.stairs(hist, edges, color="C1", label="particles (histogram)")
    ax2.plot(x, run.densities()[-1], "k-", lw=1.5, label="PDE")
    ax2.set(xlabel="x", ylabel="density at t = 30", title=f"final law, L1 = {l1:.3f}")
    ax2.legend()
    fig.savefig(out / "particles_curie_weiss.png", dpi=110)
    print(f"figure: {out / 'particles_curie_weiss.png'}")
