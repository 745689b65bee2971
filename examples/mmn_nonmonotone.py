r"""Mei-Montanari-Nguyen non-monotone activation: the initialisation decides the limit.

Runs mmn_nonmonotone.toml for kappa = 0.4 and 0.1 (w ~ N(0, kappa^2/d I_d), d = 320,
Delta = 0.5) to t = 1000, plus short copies (t <= 10, saved every 0.05) for the fast
initial phase, and checks that the two limiting risks differ and that each final state is
stationary for the scheme:

* the dissipation int rho |d_r Psi|^2 (the column of diagnostics.csv);
* d_r Psi on the faces inside the support (the fewest cells holding 1 - 1e-6 of the
  mass), on its boundary faces (where the velocity -d_r Psi must point into the
  support, or into the wall r = 0) and off the support.

kappa = 0.1: the weights collapse onto w = 0. sigma has a kink at 0 (slopes 0 and -3),
so V(w) and Psi(w) have a cone singularity at w = 0: Psi(w) ~ Psi(0) + Psi'(0+) |w| with
Psi'(0+) > 0. The velocity -Psi'(0+) points into the wall r = 0 from every side, so the
point mass at r = 0 is stationary for the PDE and for the scheme (the upwind cell of the
face next to the wall is empty), although Psi'(0+) != 0 there: in R^d it is a
Clarke-stationary point (0 lies in the Clarke subdifferential of the cone, the ball of
radius Psi'(0+)), not a critical point. The network then outputs the constant sigma(0),
risk 1 + sigma(0)^2. The script computes Psi'(0+) and that risk from the reduction and
compares them with the grid values.

kappa = 0.4: most weights move out to r ~ 1.3-3 and a few per cent end at r = 0 (held
there by the same cone, acting as a bias sigma(0)). The fit is good, so Psi =
E[(y_hat - y) sigma(<w, x>)] is almost flat everywhere, off the support too; the state is
stationary only approximately: the risk keeps decreasing slowly while the law spreads
outward (printed: the relative risk decrease over the last decade of t, and the largest
outward velocity at the edges of the support).
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.cli import main as ddsolve_main
from ddsolve.app.results import load_run

CONFIG = Path(__file__).with_name("mmn_nonmonotone.toml")
KAPPAS = (0.4, 0.1)
T_EARLY = 10.0
SUPPORT_MASS = 1 - 1e-6


def stationarity(gm, rho, h):
    """d_r Psi on the faces inside / at the edge of / off the support of ``rho``."""
    dpsi = np.diff(gm.psi(rho)) / h                     # face i + 1/2 between cells i, i + 1
    mass = rho * h
    order = np.argsort(-mass)
    n = int(np.searchsorted(np.cumsum(mass[order]), SUPPORT_MASS * mass.sum())) + 1
    sup = np.zeros(rho.size, bool)
    sup[order[:n]] = True
    inner, off = sup[:-1] & sup[1:], ~sup[:-1] & ~sup[1:]
    # outward velocity at the support's edge faces: -dpsi to the right of a support cell,
    # +dpsi to its left; <= 0 means the edge is held
    right_edge, left_edge = sup[:-1] & ~sup[1:], ~sup[:-1] & sup[1:]
    outward = np.concatenate([-dpsi[right_edge], dpsi[left_edge]])
    return {"cells": n, "intervals": np.flatnonzero(np.diff(np.r_[0, sup.astype(int), 0])).reshape(-1, 2),
            "inner_max": float(np.abs(dpsi[inner]).max()) if inner.any() else None,
            "outward_max": float(outward.max()) if outward.size else None,
            "off_median": float(np.median(np.abs(dpsi[off]))), "dpsi": dpsi,
            "wall": bool(sup[0]), "dpsi_wall": float(dpsi[0])}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/mmn_nonmonotone")
    out = Path(ap.parse_args().out)
    runs, earlies = {}, {}
    for kappa in KAPPAS:
        d = out / f"kappa_{kappa:g}"
        k = ["--set", f"model.kappa={kappa}"]
        if ddsolve_main(["run", str(CONFIG), "--out", str(d), "--quiet", "--overwrite", *k]) != 0:
            raise SystemExit(f"ddsolve run failed for kappa={kappa}")
        if ddsolve_main(["run", str(CONFIG), "--out", str(d / "early"), "--quiet", "--overwrite", *k,
                         "--set", f"run.t_final={T_EARLY}", "--set", "run.save_every=0.05"]) != 0:
            raise SystemExit(f"ddsolve run (early times) failed for kappa={kappa}")
        runs[kappa], earlies[kappa] = load_run(d), load_run(d / "early")

    run = runs[KAPPAS[0]]
    x, h = run.setup.coords.axes[0].centers, run.setup.coords.spacing[0]
    red, offset = run.setup.model.potential.reduction, run.setup.model.risk_offset
    zero, eps = np.zeros((1, 1)), np.full((1, 1), 1e-9)
    # Psi of the point mass at w = 0 and its one-sided slope: V'(0+) + d_1 u(0+, 0)
    dpsi0 = float(red.potential_gradient(eps)[0, 0] + red.kernel_gradient(eps, zero)[0, 0])
    risk0 = float(offset + 2 * red.potential(zero)[0] + red.kernel(zero, zero)[0])
    T = run.times[-1]

    print(f"d = {run.setup.config['model']['dim']}, Delta = {run.setup.config['model']['delta']}, "
          f"{len(x)} cells on [0, {x[-1] + h / 2:g}], t_final = {T:g}")
    final, st = {}, {}
    for kappa in KAPPAS:
        r, diag = runs[kappa], runs[kappa].diagnostics
        rho = r.density(-1)
        gm = r.grid_model()
        st[kappa] = s = stationarity(gm, rho, h)
        i10 = int(np.argmin(abs(diag["t"] - T / 10)))
        final[kappa] = diag["risk"][-1]
        print(f"\nkappa = {kappa:g}: risk R(0) = {diag['risk'][0]:.4f} -> R({T:g}) = {diag['risk'][-1]:.6f}, "
              f"mean r {diag['mean_r'][-1]:.4f}; (R({diag['t'][i10]:g}) - R({T:g})) / R({T:g}) = "
              f"{(diag['risk'][i10] - diag['risk'][-1]) / diag['risk'][-1]:.2%}")
        print(f"  dissipation at t = {T:g}: {diag['dissipation'][-1]:.2e} (at t = {diag['t'][i10]:g}: "
              f"{diag['dissipation'][i10]:.2e}); mass in the cell at the wall r = 0: {h * rho[0]:.4f}")
        iv = ", ".join(f"[{x[a] - h / 2:.3f}, {x[b - 1] + h / 2:.3f}]" for a, b in s["intervals"])
        print(f"  support ({SUPPORT_MASS} of the mass): {s['cells']} cells, r in {iv}")
        inner = "no interior faces" if s["inner_max"] is None else f"{s['inner_max']:.2e}"
        print(f"  max |d_r Psi| inside the support: {inner}; largest outward velocity at its edges: "
              f"{s['outward_max']:.2e} ({'held' if s['outward_max'] <= 0 else 'creeping outward'}); "
              f"median |d_r Psi| off the support: {s['off_median']:.2e}")
        if s["wall"]:
            print(f"  at the wall: d_r Psi(face h) = {s['dpsi_wall']:+.4f} > 0, velocity into the wall "
                  f"({'held' if s['dpsi_wall'] > 0 else 'NOT held'})")

    print(f"\npoint mass at w = 0 (from the reduction): Psi'(0+) = V'(0+) + d_1 u(0+, 0) = {dpsi0:.4f}, "
          f"risk R# + 2 V(0) + u(0, 0) = {risk0:.4f}")
    r01 = final[KAPPAS[1]]
    print(f"kappa = {KAPPAS[1]:g} grid: d_r Psi next to the wall {st[KAPPAS[1]]['dpsi_wall']:.4f}, risk "
          f"{r01:.4f}; the risk differs by {r01 - risk0:.4f} ~ 2 Psi'(0+) h/2 = {dpsi0 * h:.4f} "
          f"(the cell [0, h] has its V and u averaged at r ~ h/2)")
    ratio = final[KAPPAS[1]] / final[KAPPAS[0]]
    print(f"limiting risks differ: kappa = {KAPPAS[0]:g}: {final[KAPPAS[0]]:.6f}, kappa = {KAPPAS[1]:g}: "
          f"{final[KAPPAS[1]]:.4f} (ratio {ratio:.0f}) -> {'different limits' if ratio > 10 else 'SIMILAR'}")

    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for k, kappa in enumerate(KAPPAS):
        e, dg = earlies[kappa].diagnostics, runs[kappa].diagnostics
        sel = dg["t"] > T_EARLY
        t = np.concatenate([e["t"], dg["t"][sel]])
        risk = np.concatenate([e["risk"], dg["risk"][sel]])
        ax1.loglog(t[t > 0], risk[t > 0], color=f"C{k}", label=f"κ = {kappa:g}")
        rho = runs[kappa].density(-1)
        ax2.plot(x, rho, color=f"C{k}", lw=2.5 - k, label=f"κ = {kappa:g}, t = {T:g} "
                 f"(mass {h * rho[0]:.3f} in [0, h])")
        ax2.plot(x, runs[kappa].density(0), color=f"C{k}", ls=":", lw=1, label=f"κ = {kappa:g}, t = 0")
        ax3.plot(x[:-1] + h / 2, st[kappa]["dpsi"], color=f"C{k}", lw=0.8, label=f"κ = {kappa:g}")
        sup = np.zeros(x.size - 1, bool)
        for a, b in st[kappa]["intervals"]:
            sup[a:b] = True
        ax3.plot((x[:-1] + h / 2)[sup], st[kappa]["dpsi"][sup], "o", color=f"C{k}", ms=3,
                 label=f"κ = {kappa:g}, faces right of support cells")
    ax1.axhline(risk0, color="gray", ls="--", lw=1, zorder=0, label=f"point mass at w = 0: {risk0:.2f}")
    ax1.set(xlabel="t  (SGD steps × ε)", ylabel="risk", title="risk, non-monotone σ, d = 320")
    ax1.legend(fontsize="small")
    ax2.set(xlabel="r = |w|", ylabel="density of r", yscale="log", ylim=(1e-4, 3 / h),
            title="initial (dotted) and final laws of r")
    ax2.legend(fontsize="small")
    ax3.set_yscale("symlog", linthresh=1e-4)
    ax3.axhline(0, color="k", lw=0.5)
    ax3.set(xlabel="r", ylabel="∂_r Ψ (face values)", title="∂_r Ψ of the final states")
    ax3.legend(fontsize="small")
    fig.savefig(out / "mmn_nonmonotone.png", dpi=110)
    print(f"figure: {out / 'mmn_nonmonotone.png'}")
