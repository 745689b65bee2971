r"""Noisy SGD for a ReLU network: the stationary law of r = |w| is an exact Gamma law.

For sigma = ReLU on MMN's isotropic Gaussians, V(r) = -a0 r and the radial kernel is
u(r, r') = b0 r r', so Psi[rho](r) = (b0 <r> - a0) r is linear and the stationary state
rho ~ r^(d-1) exp(-beta Psi) is Gamma(d, beta lambda), lambda = b0 <r> - a0, with the
self-consistent mean <r> = (a0 + sqrt(a0^2 + 4 b0 d / beta)) / (2 b0) (unique, F is convex;
ddsolve.laws.exact.relu_noisy_stationary). Runs noisy_relu.toml (d = 10, Delta = 0.5,
beta = 50) and prints the L1 distance of the final density to the exact Gamma cell
averages, the exact vs PDE mean of r, F(T) against the free energy of the exact law, and
the observed order of the L1 error on 75 / 150 / 300 cells.
"""
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.special import gammaln

from ddsolve.app.results import example_out, load_run, run_or_exit
from ddsolve.laws.exact import gamma_cell_averages, relu_noisy_stationary

CONFIG = Path(__file__).with_name("noisy_relu.toml")
REFINE = (75, 150)                    # coarser grids; the toml's grid is the finest


def compare(run):
    """(L1 error of the final density vs the exact cell averages, PDE mean r, exact law)."""
    m, ax = run.setup.config["model"], run.setup.coords.axes[0]
    ex = relu_noisy_stationary(m["dim"], m["delta"], m["beta"])
    exact = gamma_cell_averages(ax.edges, ex["shape"], ex["rate"])
    return ax.spacing * np.abs(run.density(-1) - exact).sum(), run.diagnostics["mean_r"][-1], ex, exact


def exact_free_energy(ex, beta):
    """F of the exact Gamma law: -a0 <r> + b0 <r>^2 / 2 + beta^-1 int rho log(rho / r^(d-1))."""
    d, rate, mean = ex["shape"], ex["rate"], ex["mean"]
    return -ex["a0"] * mean + 0.5 * ex["b0"] * mean**2 + (d * math.log(rate) - d - gammaln(d)) / beta


if __name__ == "__main__":
    out = example_out(__doc__, "runs/noisy_relu")
    run_or_exit("run", str(CONFIG), "--out", str(out))
    for n in REFINE:
        run_or_exit("run", str(CONFIG), "--out", str(out / f"cells_{n}"),
                    "--set", f"grid.cells={n}", "--set", "run.save_every=50")

    run = load_run(out)
    m, diag, T = run.setup.config["model"], run.diagnostics, run.times[-1]
    err, mean_r, ex, exact = compare(run)
    x = run.setup.coords.axes[0].centers
    print(f"d = {m['dim']}, Delta = {m['delta']}, beta = {m['beta']:g}: "
          f"a0 = {ex['a0']:.6f}, b0 = {ex['b0']:.6f}, "
          f"stationary law Gamma(shape {ex['shape']:g}, rate {ex['rate']:.4f})")
    print(f"t = {T:g}: L1 error vs the exact Gamma cell averages {err:.2e}; mean r: exact {ex['mean']:.6f}, "
          f"PDE {mean_r:.6f} (difference {mean_r - ex['mean']:+.1e})")
    lam = ex["rate"] / m["beta"]                                  # Psi = lambda r
    F_exact = exact_free_energy(ex, m["beta"])
    print(f"free energy: F(T) = {diag['free_energy'][-1]:.8f}, exact law {F_exact:.8f} "
          f"(difference {diag['free_energy'][-1] - F_exact:+.1e}); "
          f"Psi slope lambda = b0 <r> - a0 = {lam:.6f}; "
          f"dissipation at T {diag['dissipation'][-1]:.1e}")
    dF = np.diff(diag["free_energy"])
    print(f"F non-increasing: {bool(np.all(dF <= 1e-12))} (largest increase {max(dF.max(), 0):.1e}); "
          f"mass drift {abs(diag['mass'][-1] - 1):.1e}")

    print("\ncells        h      L1 error   observed order   mean r - exact   F(T) - F[Gamma]")
    rows = []
    for n in (*REFINE, len(x)):
        r = run if n == len(x) else load_run(out / f"cells_{n}")
        e, mr, _, _ = compare(r)
        rows.append((n, r.setup.coords.spacing[0], e, mr, r.diagnostics["free_energy"][-1] - F_exact))
    for k, (n, h, e, mr, dF_n) in enumerate(rows):
        order = "" if k == 0 else f"{math.log(rows[k - 1][2] / e) / math.log(rows[k - 1][1] / h):.2f}"
        print(f"{n:5d}   {h:.4f}   {e:.3e}   {order:>10}       {mr - ex['mean']:+.2e}        {dF_n:+.2e}")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for k, tt in enumerate((0.0, 2.0, 10.0)):
        i = int(np.argmin(abs(run.times - tt)))
        ax1.plot(x, run.density(i), color=f"C{k}", lw=1, alpha=0.7, label=f"ddsolve t = {run.times[i]:g}")
    ax1.plot(x, run.density(-1), "C3-", lw=2.5, alpha=0.6, label=f"ddsolve t = {T:g}")
    ax1.plot(x, exact, "k--", lw=1, label=f"exact Gamma({ex['shape']:g}, {ex['rate']:.2f})")
    ax1.set(xlabel="r = |w|", ylabel="density of r", xlim=(0, 4),
            title=f"noisy ReLU, d = {m['dim']}, β = {m['beta']:g}: L1 error {err:.1e}")
    ax1.legend(fontsize="small")
    t, F = diag["t"], diag["free_energy"]
    ax2.semilogy(t[:-1], F[:-1] - F[-1], "o-", ms=3, label=r"$F(t) - F(T)$")
    ax2.axhline(abs(F[-1] - F_exact), color="gray", ls="--", lw=1,
                label=rf"$|F(T) - F[\mathrm{{Gamma}}]|$ = {abs(F[-1] - F_exact):.1e} (grid error)")
    ax2.set(xlabel="t", ylabel="free-energy gap", xlim=(0, 100), ylim=(1e-14, None),
            title=f"free energy, F(T) = {F[-1]:.6f}, exact law {F_exact:.6f}")
    ax2.legend(fontsize="small")
    fig.savefig(out / "noisy_relu.png", dpi=110)
    print(f"figure: {out / 'noisy_relu.png'}")
