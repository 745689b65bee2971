"""Symmetry breaking in the Desai-Zwanzig / Curie-Weiss model (bifurcation diagram).

Sweeps model.beta and compares the long-time mean m(T) of each run with the stationary
states m = <x> under exp(-beta (V + theta x^2/2 - theta m x)) (1D quadrature). beta_c is
estimated from the runs as the zero of the decay rate lambda(beta) of m(t) ~ e^{-lambda t}
(t >= 50; quadratic fit to the three subcritical runs nearest to it) and computed from
the linearisation theta beta Var_0(beta) = 1.
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import brentq

from ddsolve.app.cli import main as ddsolve_main
from ddsolve.app.results import load_run

CONFIG = Path(__file__).with_name("curie_weiss_double_well.toml")
BETAS = [1.5, 1.8, 2.0, 2.1, 2.4, 2.6, 3.0, 4.0]
X = np.linspace(-5.0, 5.0, 20001)
V = X**4 / 4 - X**2 / 2                                  # model.potential = "double-well"


def gibbs_mean(m, beta, theta):
    """<x> and <x^2> (= Var_0 at m = 0) of exp(-beta (V + theta x^2/2 - theta m x))."""
    a = -beta * (V + theta * X**2 / 2 - theta * m * X)
    w = np.exp(a - a.max())
    return (X * w).sum() / w.sum(), (X**2 * w).sum() / w.sum()


def m_star(beta, theta):
    """Largest non-negative root of m = <x>_m (0 if only the symmetric state)."""
    f = lambda m: gibbs_mean(m, beta, theta)[0] - m          # noqa: E731
    return brentq(f, 1e-4, 3.0) if f(1e-4) > 0 else 0.0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/curie_weiss_double_well")
    out = Path(ap.parse_args().out)
    runs = {}
    for beta in BETAS:
        d = out / f"beta_{beta:g}"
        if ddsolve_main(["run", str(CONFIG), "--out", str(d), "--quiet", "--overwrite", "--set", f"model.beta={beta}"]):
            raise SystemExit(f"ddsolve run failed for beta={beta}")
        run = load_run(d)
        runs[beta] = (run.diagnostics["t"], run.diagnostics["mean_x"])
    theta = run.setup.config["model"]["theta"]              # the same in every run

    beta_lin = brentq(lambda b: theta * b * gibbs_mean(0.0, b, theta)[1] - 1.0, 0.5, 10.0)
    print("  beta   |m(T)| ddsolve   m* (self-consistency)   decay rate of m")
    rates = {}
    for beta, (t, m) in runs.items():
        ms = m_star(beta, theta)
        sel = (t >= 50) & (np.abs(m) > 1e-9)
        rate = ""
        if ms == 0.0 and sel.sum() > 5:
            rates[beta] = -np.polyfit(t[sel], np.log(np.abs(m[sel])), 1)[0]
            rate = f"{rates[beta]:.4f}"
        print(f"{beta:6.2f}   {abs(m[-1]):10.4f}   {ms:14.4f}          {rate}")
    b_r, l_r = np.array(list(rates)), np.array(list(rates.values()))
    fit = np.polyfit(b_r[-3:], l_r[-3:], 2)           # the three runs nearest to beta_c
    beta_fit = min(r.real for r in np.roots(fit) if abs(r.imag) < 1e-12 and r.real > b_r.max())
    print(f"critical beta from the sweep (zero of the fitted decay rate): {beta_fit:.4f}")
    print(f"critical beta from theta beta Var_0 = 1 (quadrature):         {beta_lin:.4f}")

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for k, (beta, (t, m)) in enumerate(runs.items()):
        ax1.plot(t, m, color=f"C{k}", label=f"β={beta:g}")
    ax1.set(xlabel="t", ylabel="mean m(t)", title="mean of ρ(t) (initial mean 0.1)")
    ax1.set_ylim(top=1.05)
    ax1.legend(fontsize="small", ncols=4, loc="upper right")
    bb = np.linspace(1.0, 4.5, 141)
    ax2.plot(bb, [m_star(b, theta) for b in bb], "k-", lw=1, label="self-consistency m*(β)")
    ax2.plot(BETAS, [abs(m[-1]) for _, m in runs.values()], "o", color="C3", label="ddsolve |m(T)|")
    ax2.axvline(beta_lin, color="gray", ls="--", label=f"β_c = {beta_lin:.3f} (linearisation)")
    ax2.set(xlabel="β", ylabel="|m| at t = T", title="bifurcation diagram")
    ax2.legend(fontsize="small")
    ax3.plot(b_r, l_r, "o", label="ddsolve (fit of log|m|, t ≥ 50)")
    ax3.plot(bb[bb < beta_fit + 0.1], np.polyval(fit, bb[bb < beta_fit + 0.1]), "k--",
             label=f"quadratic fit, zero at {beta_fit:.3f}")
    ax3.axhline(0, color="gray", lw=0.5)
    ax3.set(xlabel="β", ylabel="decay rate λ of m(t)", title="subcritical relaxation of the mean")
    ax3.legend(fontsize="small")
    fig.savefig(out / "curie_weiss_double_well.png", dpi=110)
    print(f"figure: {out / 'curie_weiss_double_well.png'}")
