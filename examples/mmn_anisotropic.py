r"""Anisotropic Gaussians, ReLU: the weights align with the informative block.

Runs mmn_anisotropic.toml (d = 40, s0 = 8, Delta = 0.5, kappa = 0.8) on the (r1, r2)
grid, r1 = |w_{1:s0}| (informative), r2 = |w_{s0+1:d}| (noise), and prints the risk and
the means of r1, r2 over time. The noise block is useless for the classes (they differ
only in the variance of the first s0 coordinates) and costs risk through the kernel, so r2
collapses to 0 while r1 grows. On r2 = 0 the problem is the isotropic ReLU problem in
dimension s0, where V = -a0 r1 and u = b0 r1 r1' (ddsolve.laws.exact.relu_noisy_stationary):
Psi = (b0 <r1> - a0) r1 is linear, so every law with <r1> = a0/b0 is stationary and the
risk is 1 - a0^2/b0. The script compares the final mean of r1 and risk with these values.
"""
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.results import run_example
from ddsolve.laws.exact import relu_noisy_stationary

CONFIG = Path(__file__).with_name("mmn_anisotropic.toml")

if __name__ == "__main__":
    run = run_example(CONFIG, __doc__)
    out = run.path
    m, coords, d = run.setup.config["model"], run.setup.coords, run.diagnostics
    (r1, r2), (h1, h2) = (a.centers for a in coords.axes), coords.spacing
    times, data = run.times, run.densities()
    print(f"d = {m['dim']}, s0 = {m['s0']}, Delta = {m['delta']}, kappa = {m['kappa']}, {m['activation']}; "
          f"grid {coords.shape[0]} x {coords.shape[1]} on [0, {r1[-1] + h1 / 2:g}]^2")
    print("     t      risk     mean r1   mean r2   dissipation   mass with r2 < 0.1")
    for tt in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, times[-1]):
        i = int(np.argmin(abs(d["t"] - tt)))
        small = h1 * h2 * data[i][:, r2 < 0.1].sum()
        print(f"{d['t'][i]:6.2f}  {d['risk'][i]:.6f}  {d['mean_r1'][i]:.4f}    {d['mean_r2'][i]:.4f}    "
              f"{d['dissipation'][i]:.2e}      {small:.4f}")
    ex = relu_noisy_stationary(m["s0"], m["delta"], math.inf)       # beta = inf: <r1> = a0 / b0
    r1_star, risk_star = ex["mean"], 1 - ex["a0"] ** 2 / ex["b0"]
    print(f"final (t = {times[-1]:g}): risk {d['risk'][-1]:.6f}, mean r1 {d['mean_r1'][-1]:.4f}, "
          f"mean r2 {d['mean_r2'][-1]:.4f} (centre of the first r2 cell: {r2[0]:.4f})")
    print(f"r2 = 0 limit (isotropic ReLU in dimension s0 = {m['s0']}): mean r1 = a0/b0 = {r1_star:.4f}, "
          f"risk 1 - a0^2/b0 = {risk_star:.6f}; differences {d['mean_r1'][-1] - r1_star:+.1e}, "
          f"{d['risk'][-1] - risk_star:+.1e} (O(h): the mass sits in the first r2 cell, not at r2 = 0)")

    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    ax = axes[0]
    ax.semilogx(d["t"][1:], d["risk"][1:], "k-", label="risk")
    ax.axhline(risk_star, color="gray", ls="--", lw=1, label="r2 = 0 limit 1 - a0²/b0")
    ax.set(xlabel="t  (SGD steps × ε)", ylabel="risk", title="risk")
    axm = ax.twinx()
    axm.semilogx(d["t"][1:], d["mean_r1"][1:], "C0-", label="mean r1")
    axm.semilogx(d["t"][1:], d["mean_r2"][1:], "C3-", label="mean r2")
    axm.set_ylabel("mean r1, mean r2")
    ax.legend(handles=ax.lines + axm.lines, fontsize="small", loc="center right")
    extent = (0, r2[-1] + h2 / 2, 0, r1[-1] + h1 / 2)
    for ax, tt in zip(axes[1:], (0.0, 2.0, times[-1])):
        i = int(np.argmin(abs(times - tt)))
        img = ax.imshow(data[i], origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(img, ax=ax, fraction=0.05)
        ax.set(xlabel="r2 = |w_noise|", ylabel="r1 = |w_informative|", title=f"density, t = {times[i]:g}")
    axes[-1].axhline(r1_star, color="w", ls=":", lw=1)
    fig.savefig(out / "mmn_anisotropic.png", dpi=110)
    print(f"figure: {out / 'mmn_anisotropic.png'}")
