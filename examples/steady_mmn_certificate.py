r"""Mei-Montanari-Nguyen non-monotone activation, noiseless: is either limit a global minimiser?

The problem is mmn_nonmonotone.toml (d = 320, Delta = 0.5, radial grid on [0, 4] with 1000
cells, beta = inf). The two initialisations kappa = 0.1 and kappa = 0.4 are relaxed with
ddsolve.steady.noiseless.relax_to_stationarity: chunks of explicit steps (second order,
dt <= 0.25, first chunk 0.5, each 1.25 times longer), stopped when the dissipation per unit mass is below 1e-12 and the L1 change
rate is below 1e-9, or at t = 2e4. Each limit is then compared with the global minimum of
the discrete risk over all measures on the grid, R_h(p) = R# + 2 V.p + p.K.p over p >= 0
with sum(p) = 1 (global_minimum). K is a Gram matrix, so the QP is convex and the
minimum is global. Every global minimiser has supp rho within argmin Psi[rho] (Mei,
Montanari & Nguyen, PNAS 2018), and for a PSD kernel that condition is also sufficient.
The script prints each limit's certificate (max of Psi on the support minus min Psi)
and its risk gap.

Two extra computations:

* the minimum with the mass trapped at w = 0 held fixed (global_minimum(fixed=...)):
  the cone of Psi at w = 0, from the kink of sigma at 0, holds that mass for ever. This
  splits the kappa = 0.4 gap into the part due to the trapped mass and the part due to
  incomplete relaxation;
* the global minimum on wider grids (r_max = 6, 8, 16, 32, same cell width): the
  minimiser puts mass in the last cell, against the wall r = r_max.

Figure: the mass per cell of the two limits and of the global minimiser, Psi - min Psi
of each, and the risk during the relaxations.

Measured (1000 cells, about 11 s on 2 cores):

* kappa = 0.1 is stationary at t = 1.1: all the mass sits in the cell [0, h], risk
  7.2644. It is not global: Psi there exceeds min Psi by 9.65, and the risk gap is 7.26.
* kappa = 0.4 is not stationary by the rule at t = 2e4: dissipation 1.3e-10, L1 change
  rate 4e-4, as the tail in r ~ 1.8-4 still creeps outward. Its risk is 0.0049223. It is
  not global either: the 4.1% of the mass held at w = 0 has Psi 0.0112 above min Psi,
  and the risk gap is 5.83e-4. Of that gap, 5.80e-4 is the price of the trapped mass
  (the minimum with it fixed is 0.0049188) and 3.5e-6 is incomplete relaxation.
* The global minimum on the grid is risk 0.0043392 (duality gap 5e-16, found in about
  0.2 s). Its minimiser puts 0.569 of the mass at r = 1.340-1.348 and 0.431 in the last
  cell, against the wall r = 4. The mass far out acts as a bias. On wider grids the
  minimum keeps falling (0.0041976, 0.0041452, 0.0040835, 0.0040592 for r_max = 6, 8,
  16, 32) while the mass in the last cell shrinks (0.31 to 0.20). This suggests that
  over all measures on R^d the infimum is approached only as some mass escapes to
  r -> infinity, so it is not attained; 0.0043392 is the minimum of the r <= 4 problem.
"""
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.config import build, load_config
from ddsolve.app.io import DiagnosticsCSV
from ddsolve.app.results import example_out
from ddsolve.grid.grid_model import GridModel
from ddsolve.steady.noiseless import classify, global_minimum, relax_to_stationarity

CONFIG = Path(__file__).with_name("mmn_nonmonotone.toml")
KAPPAS = (0.1, 0.4)
CELLS = 1000                     # the config's grid; cell width h = 0.004
T_MAX = 2e4
TOLS = {"dissipation_tol": 1e-12, "change_tol": 1e-9}
EVOLVE = {"dt": 0.25}            # without a step cap the late risk oscillates (±1e-6)
TRAP_R = 0.05                    # mass within r < TRAP_R counts as trapped at w = 0
WIDER = (6.0, 8.0, 16.0, 32.0)


def grid_model(overrides):
    setup = build(load_config(CONFIG, [f"grid.cells={CELLS}", *overrides]))
    return GridModel(setup.model, setup.coords), setup.initial.values


def describe_support(r, weights, h):
    """Groups of adjacent support cells: ``r in [a, b]: mass``."""
    order = np.argsort(r)
    r, w = r[order], weights[order]
    groups, start = [], 0
    for k in range(1, r.size + 1):
        if k == r.size or r[k] - r[k - 1] > 1.5 * h:
            groups.append(f"r in [{r[start] - h / 2:.3f}, {r[k - 1] + h / 2:.3f}]: "
                          f"mass {w[start:k].sum():.4f}")
            start = k
    return "; ".join(groups)


if __name__ == "__main__":
    out = example_out(__doc__, "runs/steady_mmn_certificate")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    limits, seconds = {}, {}
    for kappa in KAPPAS:
        gm, rho0 = grid_model([f"model.kappa={kappa}"])
        t0 = time.perf_counter()
        res = relax_to_stationarity(gm, rho0, t_max=T_MAX, chunk=0.5, growth=1.25,
                                    evolve_options=EVOLVE, **TOLS)
        seconds[kappa] = time.perf_counter() - t0
        limits[kappa] = res
        (out / f"kappa_{kappa:g}").mkdir(exist_ok=True)
        csv = DiagnosticsCSV(out / f"kappa_{kappa:g}" / "diagnostics.csv")
        for row in res.history:
            csv.write(row)
        csv.close()

    h = gm.coords.spacing[0]
    r = gm.coords.axes[0].centers
    print(f"MMN non-monotone sigma, d = 320, Delta = 0.5, beta = inf, {CELLS} cells on [0, 4] "
          f"(h = {h:g})")
    for kappa in KAPPAS:
        res = limits[kappa]
        risk = res.column("risk")
        rises = np.diff(risk)
        print(f"\nkappa = {kappa:g}: relaxed to t = {res.t:g} in {seconds[kappa]:.1f} s "
              f"({res.steps} steps), converged = {res.converged}")
        print(f"  {res.reason}")
        print(f"  risk {risk[0]:.4f} -> {risk[-1]:.6f}; largest rise between checks "
              f"{max(rises.max(), 0):.1e}")

    t0 = time.perf_counter()
    qp = global_minimum(gm)
    t_qp = time.perf_counter() - t0
    print(f"\nglobal minimum over all measures on the grid ({t_qp:.2f} s): risk {qp.risk:.8f}, "
          f"duality gap {qp.gap:.1e}, KKT residual {qp.kkt_residual:.1e}, convex = {qp.convex} "
          f"(K on the tangent space: eigenvalues in [{qp.tangent_eigenvalues[0]:.1e}, "
          f"{qp.tangent_eigenvalues[1]:.4g}]), iterations {qp.iterations}")
    print(f"  support: {describe_support(qp.support_centers[:, 0], qp.weights, h)}")
    print(f"  Psi on the support = min Psi = {qp.multiplier:.6f}")

    classes = {}
    for kappa in KAPPAS:
        c = classes[kappa] = classify(gm, limits[kappa].rho, qp)
        cert = c.certificate
        print(f"\nkappa = {kappa:g}: {c.description}")
        print(f"  support (1 - 1e-10 of the mass): {cert.support_cells} cells in r in "
              f"[{cert.support_extent[0, 0]:.3f}, {cert.support_extent[0, 1]:.3f}]; "
              f"mean excess of Psi on it {cert.weighted_gap:.3e} (risk gap <= 2x that = "
              f"{2 * cert.weighted_gap:.3e})")

    # the kappa = 0.4 gap: trapped mass vs incomplete relaxation
    rho = limits[0.4].rho
    trapped = np.where(r < TRAP_R, rho, 0.0)
    m0 = float(trapped.sum() * h)
    fixed = global_minimum(gm, fixed=trapped)
    risk04 = classes[0.4].value
    print(f"\nkappa = 0.4: mass {m0:.4f} trapped at r < {TRAP_R:g}; the best risk with that mass "
          f"held there is {fixed.risk:.6f} (gap {fixed.gap:.1e}).")
    print(f"  risk gap {risk04 - qp.risk:.3e} = {fixed.risk - qp.risk:.3e} (trapped mass) "
          f"+ {risk04 - fixed.risk:.3e} (not yet relaxed at t = {limits[0.4].t:g})")
    print(f"  free part: {describe_support(fixed.support_centers[:, 0], fixed.weights, h)}")

    print("\nthe wall at r_max: global minimum on wider grids (same h)")
    print(f"  r_max = 4: risk {qp.risk:.8f}, mass in the last cell "
          f"{qp.rho[-1] * h:.4f}")
    for r_max in WIDER:
        cells = round(r_max / h)
        setup = build(load_config(CONFIG, [f"grid.cells={cells}", f"grid.r_max={r_max}"]))
        q = global_minimum(GridModel(setup.model, setup.coords))
        print(f"  r_max = {r_max:g}: risk {q.risk:.8f}, mass in the last cell "
              f"{q.rho[-1] * h:.4f}; support "
              f"{describe_support(q.support_centers[:, 0], q.weights, h)}")

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    styles = {0.1: ("C0", "κ = 0.1 limit"), 0.4: ("C1", "κ = 0.4 limit")}
    for kappa in KAPPAS:
        color, label = styles[kappa]
        rho = limits[kappa].rho
        ax1.semilogy(r, np.maximum(rho * h, 1e-300), color=color, lw=1.2,
                     label=f"{label} (R = {classes[kappa].value:.4g})")
        psi = gm.psi(rho)
        ax2.semilogy(r, psi - psi.min() + 1e-16, color=color, lw=1,
                     label=f"{label}: gap {classes[kappa].certificate_gap:.3g}")
        sup = rho * h > 1e-10
        ax2.plot(r[sup], psi[sup] - psi.min() + 1e-16, ".", color=color, ms=3)
        ax3.loglog(limits[kappa].column("t")[1:], limits[kappa].column("risk")[1:], color=color,
                   label=label)
    ax1.vlines(qp.support_centers[:, 0], 1e-12, qp.weights, color="k", lw=2,
               label=f"global minimiser (R = {qp.risk:.4g})")
    psi_qp = gm.psi(qp.rho)
    ax2.semilogy(r, psi_qp - psi_qp.min() + 1e-16, color="k", lw=1, label="global minimiser")
    ax1.set(xlabel="r = |w|", ylabel="mass per cell  ρ_i h", ylim=(1e-12, 2),
            title="limits and global minimiser (d = 320)")
    ax1.legend(fontsize="small")
    ax2.set(xlabel="r", ylabel="Ψ − min Ψ (+1e-16)", ylim=(1e-10, 30),
            title="Ψ of each state (dots: support)")
    ax2.legend(fontsize="small")
    ax3.axhline(qp.risk, color="k", ls="--", lw=1, label=f"global minimum {qp.risk:.5f}")
    ax3.axhline(fixed.risk, color="C1", ls=":", lw=1,
                label=f"minimum with the κ = 0.4 mass at w = 0 fixed: {fixed.risk:.5f}")
    ax3.set(xlabel="t", ylabel="risk", title="risk during relaxation")
    ax3.legend(fontsize="small", loc="center right")
    fig.savefig(out / "steady_mmn_certificate.png", dpi=110)
    print(f"\nfigure: {out / 'steady_mmn_certificate.png'}; total {time.perf_counter() - start:.1f} s")
