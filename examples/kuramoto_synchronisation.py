"""Noisy Kuramoto model: linear stability of the uniform state and synchronisation.

For each kappa, the first Fourier mode r(t) = |int rho e^{ix} dx| of the density
should grow/decay like e^{(kappa/2 - 1/beta) t} while small; above kappa beta = 2 the
density converges to the synchronised state exp(beta kappa r cos(x - phi)) / (2 pi I0),
with r = I1(beta kappa r) / I0(beta kappa r).
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import brentq
from scipy.special import i0e, i1e

from ddsolve.app.cli import main as ddsolve_main
from ddsolve.app.results import load_run

CONFIG = Path(__file__).with_name("kuramoto_synchronisation.toml")
KAPPAS = [1.0, 1.5, 2.5, 3.0]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/kuramoto_synchronisation")
    out = Path(ap.parse_args().out)

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    print(" kappa   predicted rate   measured rate   final r   r_inf (exact)   max|rho - rho_inf|")
    measured = []
    for k, kappa in enumerate(KAPPAS):
        d = out / f"kappa_{kappa:g}"
        if ddsolve_main(["run", str(CONFIG), "--out", str(d), "--quiet", "--overwrite", "--set", f"model.kappa={kappa}"]):
            raise SystemExit(f"ddsolve run failed for kappa={kappa}")
        run = load_run(d)
        t, rho = run.times, run.densities()
        beta, ax = run.setup.config["model"]["beta"], run.setup.coords.axes[0]
        x, h, edges = ax.centers, ax.spacing, ax.edges
        # exact Fourier coefficient of the piecewise-constant density: sum rho_j int_cell e^{ix}
        c1 = rho @ ((np.exp(1j * edges[1:]) - np.exp(1j * edges[:-1])) / 1j)
        r = np.abs(c1)
        pred = kappa / 2 - 1 / beta
        sel = (t >= 0.5) & (r < 0.03) & (r > 1e-10)
        rate = np.polyfit(t[sel], np.log(r[sel]), 1)[0]
        measured.append(rate)
        if kappa * beta > 2:   # synchronised state, centred at the phase of the numerical one
            r_inf = brentq(lambda s: i1e(beta * kappa * s) / i0e(beta * kappa * s) - s, 1e-6, 1.0)
            phi = np.angle(c1[-1])
            mid = np.linspace(edges[:-1], edges[1:], 9)          # cell averages, 9-point midpoint
            exact = np.exp(beta * kappa * r_inf * (np.cos(mid - phi) - 1)).mean(axis=0)
            exact /= exact.sum() * h
        else:
            r_inf, exact = 0.0, np.full_like(x, 1 / (2 * np.pi))
        err = np.max(np.abs(rho[-1] - exact))
        print(f"{kappa:6.2f}   {pred:+14.4f}   {rate:+13.4f}   {r[-1]:7.4f}   {r_inf:13.4f}   {err:.2e}")
        a1.semilogy(t, r, color=f"C{k}", label=f"κ={kappa:g}")
        a1.semilogy(t, r[0] * np.exp(pred * t), "--", color=f"C{k}", lw=0.8)
        a3.plot(x, rho[-1], color=f"C{k}", lw=2, alpha=0.6, label=f"κ={kappa:g}, t={t[-1]:g}")
        a3.plot(x, exact, "k--", lw=0.8, label="exact stationary state" if k == 0 else None)
    a1.set(xlabel="t", ylabel="first Fourier mode r(t)", ylim=(1e-9, 2),
           title=r"first mode (dashed: $r(0)\,e^{(\kappa/2 - 1/\beta)t}$)")
    a1.legend(fontsize="small")
    kk = np.linspace(0.5, 3.5, 2)
    a2.plot(kk, kk / 2 - 1 / beta, "k-", lw=1, label="linearisation κ/2 − 1/β")
    a2.plot(KAPPAS, measured, "o", color="C3", label="ddsolve (fit while r < 0.03)")
    a2.axhline(0, color="gray", lw=0.5)
    a2.axvline(2 / beta, color="gray", ls=":", label="threshold κβ = 2")
    a2.set(xlabel="κ", ylabel="growth rate of the first mode", title=f"linear stability, β = {beta:g}")
    a2.legend(fontsize="small")
    a3.set(xlabel="x", ylabel="density", title="final densities")
    a3.legend(fontsize="small")
    fig.savefig(out / "kuramoto_synchronisation.png", dpi=110)
    print(f"figure: {out / 'kuramoto_synchronisation.png'}")
