r"""SGD of the real ReLU network against the mean-field PDE on MMN's anisotropic Gaussians.

Runs mmn_sgd_anisotropic.toml (the model of mmn_anisotropic: ReLU, d = 40, s0 = 8,
Delta = 0.5, kappa = 0.8) twice: ``ddsolve run`` solves the reduced PDE on the 80 x 80
(r1, r2) grid, r1 = |w_{1:s0}| (informative block), r2 = |w_{s0+1:d}| (noise block), and
``ddsolve particles`` trains N = 800 neurons w_i in R^40 by online SGD (eps = 5e-5,
t = steps x eps, 3e5 steps to t = 15) for 5 seeds. The script compares the risk and the
means of r1, r2 of SGD (median over seeds, band = min..max) with the PDE and prints the gaps.

The risk of the finite network is computed here from the stored w_i with the arc-cosine
kernel: given the class c, z_i = <w_i, x> are centred Gaussians with
Cov(z_i, z_j) = s_c1^2 <w_i1, w_j1> + <w_i2, w_j2>, and for the ReLU
E[(z_i)_+ (z_j)_+] = A_i A_j (sqrt(1 - t^2) + (pi - arccos t) t) / (2 pi), E (z_i)_+ = A_i / sqrt(2 pi),
so R_N = 1 - (2/N) sum_i E[y (z_i)_+] + (1/N^2) sum_ij E[(z_i)_+ (z_j)_+], diagonal i = j
included (the finite network). It is checked against particles.risk.population_risk at the
final snapshot of the first seed (agreement 3e-15; that call takes ~5 s at N = 800, which
is why the particle run itself writes no risk).

Measured on this machine (N = 800, eps = 5e-5, 5 seeds, t = 15):

* risk: SGD median 0.81283 (seeds 0.81278-0.81291) vs PDE 0.81215; the gap is +6.8e-4 at
  t = 15 (largest +1.1e-3 at t = 2, during the collapse of r2). The i = j terms of the
  finite network, (1/N)(mean U_ii - mean U_ij), account for 4.7e-4 of it (N x 0.37); the
  remaining 2.1e-4 falls with the step size (below).
* mean r1: SGD within 4e-3 of the PDE at all t (0.9424 vs 0.9412 at t = 15; seed band
  width 7.5e-3).
* mean r2: SGD follows the PDE's collapse until t ~ 3, then levels off at 0.035 while the
  PDE's law sits in the first r2 cell (centre 0.010): gap +0.025 at t = 15. This floor is
  the SGD noise in the 32 noise coordinates, of size sqrt(eps), not a finite-N effect:
  mean r2 at t = 10 (seed 0) is 0.072, 0.050, 0.035 for eps = 2e-4, 1e-4, 5e-5 and 0.063
  for N = 3200 at eps = 2e-4. The risk gap at t = 10 (seed 0) is 3.4e-3, 1.5e-3, 7.0e-4 for
  the same three eps, i.e. 2.9e-3, 1.0e-3, 2.4e-4 beyond the i = j terms (4.6e-4 in all
  three): most of the gap at the larger steps is the step size, not N.

``--quick`` runs t = 3 with 3 seeds (a smoke test).
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.io import read_diagnostics
from ddsolve.app.results import run_or_exit, single_blas_thread
from ddsolve.networks.data import GaussianMixtureData
from particles.storage import load_particles

CONFIG = Path(__file__).with_name("mmn_sgd_anisotropic.toml")
SEEDS = (0, 1, 2, 3, 4)


def relu_risk(W: np.ndarray, s0: int, delta: float, parts: bool = False):
    """Exact population risk of y_hat = (1/N) sum_i (<w_i, x>)_+ on MMN's anisotropic data;
    with ``parts`` also the diagonal part (1/N) (mean_i U_ii - mean_{i != j} U_ij), the
    O(1/N) term by which the risk of the finite network exceeds that of its own law without
    self-interaction."""
    n = W.shape[0]
    diag_part = 0.0
    G1, G2 = W[:, :s0] @ W[:, :s0].T, W[:, s0:] @ W[:, s0:].T
    risk = 1.0                                                   # E y^2
    for y, s in ((1.0, 1.0 + delta), (-1.0, 1.0 - delta)):
        C = s * s * G1 + G2
        A = np.sqrt(np.maximum(np.diag(C), 0.0))
        t = np.clip(C / np.maximum(np.outer(A, A), 1e-300), -1.0, 1.0)
        U = np.outer(A, A) * (np.sqrt(1.0 - t * t) + (math.pi - np.arccos(t)) * t) / (2 * math.pi)
        risk += 0.5 * (-2.0 * y * A.sum() / (n * math.sqrt(2 * math.pi)) + U.sum() / n ** 2)
        off = (U.sum() - np.trace(U)) / (n * (n - 1))
        diag_part += 0.5 * (np.trace(U) / n - off) / n
    return (float(risk), float(diag_part)) if parts else float(risk)


if __name__ == "__main__":
    single_blas_thread()  # small BLAS calls: one thread is faster on a busy machine
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/mmn_sgd_anisotropic")
    ap.add_argument("--quick", action="store_true", help="t = 3, 3 seeds (smoke test)")
    args = ap.parse_args()
    out = Path(args.out)
    seeds = SEEDS[:3] if args.quick else SEEDS
    extra = ["--set", "run.t_final=3.0", "--set", "particles.t_final=3.0",
             "--set", "particles.snapshots=[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0]"
             ] if args.quick else []
    t0 = time.perf_counter()
    run_or_exit("run", CONFIG, "--out", out / "pde", *extra)
    pde = read_diagnostics(out / "pde" / "diagnostics.csv")
    print(f"PDE done [{time.perf_counter() - t0:.0f} s]")

    sgd = {}
    for seed in seeds:
        where = out / f"sgd_seed{seed}"
        run_or_exit("particles", CONFIG, "--out", where, "--set", f"particles.seed={seed}", *extra)
        snaps = load_particles(where)
        cfg = json.loads((where / "summary.json").read_text())["config"]
        m = cfg["model"]
        W = snaps.vectors
        risk, diag = np.array([relu_risk(W[k], m["s0"], m["delta"], parts=True) for k in range(W.shape[0])]).T
        sgd[seed] = {"t": snaps.t, "risk": risk, "diag": diag, "mean_r1": snaps.coordinates[:, :, 0].mean(1),
                     "mean_r2": snaps.coordinates[:, :, 1].mean(1)}
        print(f"SGD seed {seed}: N = {W.shape[1]}, risk {risk[0]:.5f} -> {risk[-1]:.5f} "
              f"[{time.perf_counter() - t0:.0f} s]")
    first = seeds[0]
    from particles.risk import population_risk
    data = GaussianMixtureData.anisotropic(m["dim"], m["s0"], m["delta"])
    from ddsolve.networks.activations import make_activation
    lib = population_risk(data, make_activation("relu"), load_particles(out / f"sgd_seed{first}").vectors[-1],
                          None, method="exact")
    print(f"check: arc-cosine risk {sgd[first]['risk'][-1]:.12f} vs particles.risk.population_risk "
          f"{lib:.12f} (difference {sgd[first]['risk'][-1] - lib:+.1e})")

    t = sgd[first]["t"]
    n = W.shape[1]
    keys = ("risk", "mean_r1", "mean_r2")
    stack = {k: np.array([sgd[s][k] for s in seeds]) for k in keys}
    med = {k: np.median(v, 0) for k, v in stack.items()}
    at = {k: np.interp(t, pde["t"], pde[k]) for k in keys}
    print(f"\nN = {n}, {len(seeds)} seeds; SGD median [min, max] vs PDE; gap = median - PDE")
    print("     t    risk SGD   [   min,    max]  risk PDE    gap      |  r1 SGD   r1 PDE   gap     "
          "|  r2 SGD   r2 PDE   gap")
    for k in range(t.size):
        lo, hi = stack["risk"][:, k].min(), stack["risk"][:, k].max()
        print(f"{t[k]:6.2f}  {med['risk'][k]:.5f}  [{lo:.5f}, {hi:.5f}]  {at['risk'][k]:.5f}  "
              f"{med['risk'][k] - at['risk'][k]:+.1e} |  {med['mean_r1'][k]:.4f}   {at['mean_r1'][k]:.4f}  "
              f"{med['mean_r1'][k] - at['mean_r1'][k]:+.4f} |  {med['mean_r2'][k]:.4f}   "
              f"{at['mean_r2'][k]:.4f}  {med['mean_r2'][k] - at['mean_r2'][k]:+.4f}")
    late = t >= 0.5 * t[-1]
    for k in keys:
        gap = med[k] - at[k]
        spread = stack[k].max(0) - stack[k].min(0)
        print(f"{k:8s}: largest |median - PDE| over all t {np.abs(gap).max():.2e} (at t = "
              f"{t[np.argmax(np.abs(gap))]:g}), at t = {t[-1]:g} {gap[-1]:+.2e}; seed band width at "
              f"t = {t[-1]:g} {spread[-1]:.2e}; mean gap over t >= {t[-1] / 2:g}: {gap[late].mean():+.2e}")
    print(f"N (R_N - R_PDE) at t = {t[-1]:g}: {n * (med['risk'][-1] - at['risk'][-1]):.2f}")
    diag_t = np.median([sgd[s]["diag"] for s in seeds], 0)
    diag = diag_t[-1]
    print(f"of which the i = j terms (1/N)(mean U_ii - mean U_ij) at t = {t[-1]:g}: {diag:.2e} "
          f"(N times: {n * diag:.2f}); remainder {med['risk'][-1] - at['risk'][-1] - diag:+.2e}")

    fig = Figure(figsize=(18, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    labels = {"risk": "population risk", "mean_r1": "mean r1 = |w_informative|",
              "mean_r2": "mean r2 = |w_noise|"}
    for ax, k in zip(axes, keys):
        ax.plot(pde["t"], pde[k], "k-", lw=1.8, label="PDE (80 x 80 grid)")
        ax.fill_between(t, stack[k].min(0), stack[k].max(0), color="C1", alpha=0.3,
                        label=f"SGD, N = {n}, {len(seeds)} seeds (min-max)")
        ax.plot(t, med[k], "o-", color="C1", ms=3, lw=1, label="SGD median")
        ax.set(xlabel="t = steps x eps", ylabel=labels[k], xscale="symlog", title=labels[k])
        ax.set_xscale("symlog", linthresh=0.5)
    axes[0].legend(fontsize="small")
    ax = axes[3]
    gap = stack["risk"] - at["risk"][None, :]
    ax.fill_between(t, gap.min(0), gap.max(0), color="C1", alpha=0.3, label="R_SGD - R_PDE (min-max)")
    ax.plot(t, np.median(gap, 0), "o-", color="C1", ms=3, lw=1, label="median")
    ax.plot(t, diag_t, "k--", lw=1, label="i = j terms (1/N)(mean U_ii - mean U_ij)")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set(xlabel="t = steps x eps", ylabel="risk gap", title="risk gap SGD - PDE", xlim=(0, t[-1] * 1.1))
    ax.legend(fontsize="small")
    fig.savefig(out / "mmn_sgd_anisotropic.png", dpi=110)
    print(f"figure: {out / 'mmn_sgd_anisotropic.png'}  [{time.perf_counter() - t0:.0f} s]")
