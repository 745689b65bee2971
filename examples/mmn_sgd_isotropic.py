r"""MMN isotropic Gaussians, non-monotone sigma, N = 800, d = 320: SGD against the PDE, and
the step size at which SGD leaves the PDE's stuck state w = 0.

Setting (Mei, Montanari & Nguyen, "A mean field view of the landscape of two-layer neural
networks", PNAS 2018): y = +-1, x | y ~ N(0, (1 + y Delta)^2 I_d), Delta = 0.5, network
y_hat = (1/N) sum_i sigma(<w_i, x>) with the non-monotone sigma (-2.5 below 0, slope -3 up to
-4 at 0.5, slope 11.5 up to 7.5 at 1.5), w_i ~ N(0, kappa^2/d I_d). Config:
mmn_sgd_isotropic.toml (one file for `ddsolve run` and `ddsolve particles`).

1. kappa = 0.4 and 0.1: the reduced PDE on r = |w| (1000 cells) and online SGD of the real
   network (N = 800, w_i in R^320, eps = 1e-5, t = steps x eps up to 1, 5 seeds): risk and
   mean |w| against t, PDE line and SGD median with its min-max band.
2. kappa = 0.1, eps = 1e-5 ... 2.5e-5 (tenth-decade steps, 5 seeds each): does SGD leave
   the stuck state? A neuron has *escaped* if |w_i| > R_OUT = 0.3 at t = 1 (the stuck radius
   is <= 0.15 on this grid and the barrier of Psi sits at r ~ 0.13-0.2); a run has *left the
   stuck state* if at least 1% of its neurons escaped. The same criterion (mass at r > 0.3)
   classifies the noisy PDE at the temperature of SGD's own noise (below). A mini-batch
   check: B = 4 with eps = 6.4e-5 has the temperature of B = 1 at eps = 1.6e-5 (the noise
   covariance per unit time is 4 eps Cov(G) / B) but 4x larger steps.

SGD's temperature. The update of particles/sgd.py with xi = 2 is, per neuron,

    w_i <- w_i + 2 eps G_i,   G_i = (y - y_hat(x)) sigma'(<w_i, x>) x,   E G_i = -grad Psi(w_i),

so over a PDE time dt = n eps (n steps, n -> inf, n eps -> 0) the increment has mean
-2 grad Psi dt and covariance n (2 eps)^2 Cov(G_i) = 4 eps Cov(G_i) dt: to first order SGD is the
diffusion dw = -xi grad Psi dt + (4 eps Cov G)^(1/2) dB (the stochastic modified equation
of Li, Tai & E, 2017; its mean-field form is the stochastic modified flow of Gess, Kassing &
Konarovskyi, 2023). ddsolve's noisy PDE d_t rho = xi div(rho grad Psi) + xi/beta Lap rho is
the Fokker-Planck equation of dw = -xi grad Psi dt + (2 xi/beta)^(1/2) dB, covariance 4/beta I dt.
Matching the two,

    beta_eff(eps) = 1 / (eps c),   c = tr Cov(G) / d.

At w = 0 (y_hat = sigma(0), sigma' = sigma'(0+) 1{z > 0} + sigma'(0-) 1{z < 0}) this is
c_0 = (sigma'(0+)^2 + sigma'(0-)^2)/2 E[(y - sigma(0))^2 (1 + y Delta)^2] - Psi'(0+)^2/d
= 4.5 x 14.0625 - 3.59^2/320 = 63.24 (the transverse variance; the radial one is smaller
by Psi'(0+)^2, a 0.06% change of the trace). The script also samples Cov(G_i) at an SGD
stuck state (eps = 1e-5) and for probe neurons at radius r in that background, c(r).
Near w = 0, Psi ~ Psi(0) + Psi'(0+)|w| (the cone of Psi from the kink of sigma), so the
noisy stationary law is rho(r) ~ r^(d-1) exp(-beta Psi'(0+) r): a Gamma law with mean
radius d/(beta Psi'(0+)) = d c eps / Psi'(0+) and excess risk ~ 2 Psi'(0+) x mean radius =
2 d c eps, both linear in eps. That near-zero state exists while r Psi'(r) = (d-1)/beta has a
root below the maximiser of r Psi'(r); for rho ~ delta_0 this gives the point-mass
threshold beta_c = (d-1) / max_r r Psi_0'(r), eps_c = 1/(beta_c c). The noisy PDE
(model.beta = beta_eff(eps), kappa = 0.1) is run for every eps of the scan with c from the
stuck state and with c at the barrier radius.

Key numbers (full run on the shared 2-core machine, `python examples/mmn_sgd_isotropic.py`:
4 min 15 s wall at a load average of 2-4 from other processes, 4 min CPU; 6 min 52 s at load
6-8 before the mini-batch runs were added):

* kappa = 0.4: SGD median risk 5.018 / 1.437 / 0.1324 / 0.0369 at t = 0.01 / 0.1 / 0.5 / 1
  against the PDE's 5.347 / 1.536 / 0.1302 / 0.0277. Early on SGD runs ahead of the PDE,
  by an amount first order in eps: at t = 0.1 the risk gap of seed 0 is -0.0997, -0.0510,
  -0.0229 and the mean |w| gap +0.043, +0.023, +0.012 for eps = 1e-5, 5e-6, 2.5e-6. At t = 1
  the gap is +0.0093 (the finite-N c/N term and a step bias, see sgd_vs_pde.py).
* kappa = 0.1: the PDE collapses to w = 0 (risk 7.2644); SGD sits next to it, mean |w| 0.059
  and risk 7.690 (seed min-max 7.683-7.705) at t = 1. The Gamma law predicts mean radius
  d c_0 eps / Psi'(0+) = 0.056 and excess risk 2 d c_0 eps = 0.40; the noisy PDE at
  beta_eff = 1/(eps c_stuck) = 1427 gives 0.059 and 7.679.
* Gradient noise: c_0 = 63.24 (closed form at w = 0), c_stuck = 70.08 at the SGD stuck state
  (eps = 1e-5), 74.97 for a probe neuron at the barrier r = 0.126; c(r)/c_stuck = 1.18, 2.20,
  3.54 at r = 0.14, 0.20, 0.26 (the steep piece of sigma is reached). The noise is shared:
  tr Cov(G_i, G_j)/d = 56.6 over pairs i != j (81% of c_stuck), and the stuck SGD state is
  aligned, not isotropic: mean cos(w_i, w_j) = 0.79, |mean_i w_i| = 0.053 against mean
  |w_i| = 0.059.
* eps scan, kappa = 0.1, t = 1 (share of escaped neurons per seed): eps = 1e-5 and 1.25e-5:
  0 in all 5 runs; 1.6e-5: 0.08-0.21 (all 5 runs left, risk 5.86); 2e-5: 0.69-0.81 (risk
  0.25); 2.5e-5: 0.97-0.99 (risk 0.042). SGD threshold eps* in (1.25e-5, 1.6e-5],
  log-interpolated 1.41e-5. Mini-batch B = 4 at eps = 6.4e-5 (same eps/B as 1.6e-5): 5/5
  left, 0.10-0.17 escaped, so the outcome follows SGD's temperature eps/B, not the step.
* Noisy PDE at beta_eff(eps): stays at w = 0 up to eps = 1.6e-5 (beta = 892; mass at
  r > 0.3: 0, 0.005 with the barrier's c) and leaves for eps >= 2e-5 (beta = 714: mean r 2.12,
  risk 0.014): threshold in (1.6e-5, 2e-5]. Point-mass threshold beta_c = 808, i.e.
  eps_c = 1.96e-5 / 1.77e-5 / 1.65e-5 with c_0 / c_stuck / c_barrier.

So the temperature match explains the stuck state quantitatively (radius and excess risk,
both linear in eps) and the threshold to within one grid step (25%), but not exactly: at
eps = 1.6e-5 SGD loses 8-21% of its neurons while the matched noisy PDE keeps all of its
mass. That B = 4 at 4x the step escapes like B = 1 points away from the discreteness of
the steps and towards the structure of the noise, which the constant, isotropic,
neuron-independent temperature leaves out: SGD's noise is shared by all neurons (one sample
per step), which aligns the stuck cloud, and it grows with |w|. This script does not
isolate which of the two moves the threshold.

The workers run single-threaded BLAS/numba (OPENBLAS_NUM_THREADS = NUMBA_NUM_THREADS = 1
unless set): on a shared 2-core machine a 2-thread OpenBLAS SGD step was measured 5x slower
than a 1-thread one when other processes were busy; --jobs (default 2) runs that many
ddsolve commands in parallel instead. --quick (smoke test): 2 seeds, t <= 0.05, eps in
{1e-5, 2.5e-5}, 500 cells, no step-size, mini-batch or barrier-temperature runs.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddsolve.app.io import read_diagnostics  # noqa: E402
from ddsolve.app.results import load_run, run_or_exit  # noqa: E402
from particles.storage import load_particles  # noqa: E402

CONFIG = Path(__file__).with_name("mmn_sgd_isotropic.toml")
KAPPAS = (0.4, 0.1)
R_OUT = 0.3          # |w| beyond which a neuron has escaped the stuck state
ESC_MIN = 0.01       # a run has left the stuck state if at least this share of neurons escaped
TRACK_SNAPS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
STUDY_SNAPS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SETTINGS = {
    "full": dict(seeds=5, t_final=1.0, eps_grid=(1e-5, 1.25e-5, 1.6e-5, 2e-5, 2.5e-5),
                 samples=60_000, calibrations=("stuck", "barrier"), report=(0.01, 0.05, 0.1, 0.5, 1.0),
                 refine=(2, 4), track_snaps=TRACK_SNAPS, cells=1000, batch=(4, 1.6e-5)),
    "quick": dict(seeds=2, t_final=0.05, eps_grid=(1e-5, 2.5e-5), samples=10_000,
                  calibrations=("stuck",), report=(0.01, 0.05), refine=(), track_snaps=(0.0, 0.01, 0.05),
                  cells=500, batch=None),
}


def _ddsolve(args):
    """One ddsolve command in a worker; returns its wall time [s]."""
    t0 = time.perf_counter()
    try:
        run_or_exit(*args)
    except SystemExit as exc:
        raise RuntimeError(f"ddsolve {' '.join(map(str, args))} failed with status {exc.code}") from None
    return time.perf_counter() - t0


def toml_list(values):
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def gradient_noise(W, data, act, rng, samples, probes=None, chunk=5000):
    """Per-sample gradients G_i = (y - y_hat) sigma'(<w_i, x>) x of the network W (N, d)
    and of probe neurons (rows of ``probes``, not part of y_hat), by Monte Carlo over
    ``samples`` draws: c_i = tr Cov(G_i)/d, |E G_i| (= |grad Psi(w_i)|), and the mean of
    tr Cov(G_i, G_j)/d over the pairs i != j of the network."""
    allW = W if probes is None else np.vstack([W, probes])
    N, d = W.shape
    s2, m1, m, pair = np.zeros(len(allW)), np.zeros(allW.shape), 0, 0.0
    while m < samples:
        X, Y = data.sample(min(chunk, samples - m), rng)
        Z = X @ allW.T
        res = Y - act(Z[:, :N]).mean(axis=1)
        C = res[:, None] * act.derivative(Z)
        x2 = np.einsum("md,md->m", X, X)
        s2 += (C**2 * x2[:, None]).sum(axis=0)
        pair += float(x2 @ (C[:, :N].sum(axis=1)**2 - (C[:, :N]**2).sum(axis=1)))
        m1 += C.T @ X
        m += len(Y)
    mean = m1 / m
    net = mean[:N]
    # tr Cov(G_i, G_j)/d averaged over the pairs i != j of the network (the shared part of the noise)
    cross = (pair / m - (np.sum(net.sum(axis=0)**2) - np.sum(net**2))) / (N * (N - 1) * d)
    return (s2 / m - (mean**2).sum(axis=1)) / d, np.linalg.norm(mean, axis=1), cross


def first_cross(xs, ps, level=0.5):
    """Log-linear interpolation of the first crossing of ``level`` by ps(xs); returns
    (estimate, bracket) or (None, text) if ps never or always exceeds it."""
    ps = np.asarray(ps, float)
    above = np.flatnonzero(ps >= level)
    if above.size == 0:
        return None, f"> {xs[-1]:.3g}"
    i = above[0]
    if i == 0:
        return None, f"<= {xs[0]:.3g}"
    lo, hi = np.log(xs[i - 1]), np.log(xs[i])
    f = (level - ps[i - 1]) / (ps[i] - ps[i - 1])
    return float(np.exp(lo + f * (hi - lo))), f"({xs[i - 1]:.3g}, {xs[i]:.3g}]"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/mmn_sgd_isotropic")
    ap.add_argument("--quick", action="store_true", help="reduced smoke version (< 60 s)")
    ap.add_argument("--jobs", type=int, default=2, help="ddsolve commands run in parallel")
    args = ap.parse_args()
    P = SETTINGS["quick" if args.quick else "full"]
    out, T, seeds, grid = Path(args.out), P["t_final"], range(P["seeds"]), P["eps_grid"]
    eps0 = grid[0]
    t_start = time.perf_counter()
    track_snaps = toml_list([t for t in P["track_snaps"] if t < T] + [T])
    study_snaps = toml_list([t for t in STUDY_SNAPS if t < T] + [T])
    common = ["--set", f"particles.t_final={T}", "--set", f"run.t_final={T}", "--set", f"grid.cells={P['cells']}"]

    def pde_dir(kappa):
        return out / f"pde_kappa{kappa:g}"

    def sgd_dir(kappa, eps, seed):
        return out / f"sgd_kappa{kappa:g}_eps{eps:g}" / f"seed{seed}"

    def noisy_dir(cal, eps):
        return out / f"noisy_pde_{cal}" / f"eps{eps:g}"

    jobs = {}
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        def submit(key, *cmd):
            jobs[key] = pool.submit(_ddsolve, [str(c) for c in cmd])

        # the state at which SGD's gradient noise is sampled: kappa = 0.1, eps = eps0, t = 0.2
        # (--quick: the final state of the kappa = 0.1 track run of seed 0)
        t_sample = min(0.2, T)
        sample_dir, sample_key = (sgd_dir(0.1, eps0, 0), ("sgd", 0.1, eps0, 0)) if args.quick else \
            (out / "stuck_sample", "sample")
        if not args.quick:
            submit("sample", "particles", CONFIG, "--out", sample_dir, "--set", "model.kappa=0.1",
                   "--set", f"particles.t_final={t_sample}", "--set", f"particles.snapshots=[{t_sample:g}]",
                   "--set", "particles.save_vectors=true", "--set", "particles.risk=none",
                   "--set", "particles.seed=1000")
        for kappa in KAPPAS:
            submit(("pde", kappa), "run", CONFIG, "--out", pde_dir(kappa), "--set", f"model.kappa={kappa}", *common)
        for kappa in KAPPAS[::-1]:  # part 1 (kappa = 0.1 is also the eps0 point of the scan)
            for s in seeds:
                vec = ["--set", "particles.save_vectors=true"] if (kappa, s, args.quick) == (0.1, 0, True) else []
                submit(("sgd", kappa, eps0, s), "particles", CONFIG, "--out", sgd_dir(kappa, eps0, s),
                       "--set", f"model.kappa={kappa}", "--set", f"particles.seed={s}",
                       "--set", f"particles.snapshots={track_snaps}", *vec, *common)
        t_ref = min(0.1, T)         # part 1, step-size check: kappa = 0.4, seed 0, eps0/2, eps0/4
        for q in P["refine"]:
            submit(("refine", q), "particles", CONFIG, "--out", sgd_dir(0.4, eps0 / q, 0),
                   "--set", f"particles.eps={eps0 / q:g}", "--set", f"particles.t_final={t_ref}",
                   "--set", f"particles.snapshots={toml_list([t for t in TRACK_SNAPS if t < t_ref] + [t_ref])}")
        if P["batch"]:              # part 2, mini-batch B with eps = B x (a scan value): same eps/B
            B, e1 = P["batch"]
            for s in seeds:
                submit(("batch", s), "particles", CONFIG, "--out", out / f"sgd_kappa0.1_eps{B * e1:g}_batch{B}" / f"seed{s}",
                       "--set", "model.kappa=0.1", "--set", f"particles.seed={s}", "--set", f"particles.eps={B * e1:g}",
                       "--set", f"particles.batch={B}", "--set", f"particles.snapshots={study_snaps}", *common)
        for eps in grid[1:][::-1]:  # part 2
            for s in seeds:
                submit(("sgd", 0.1, eps, s), "particles", CONFIG, "--out", sgd_dir(0.1, eps, s),
                       "--set", "model.kappa=0.1", "--set", f"particles.seed={s}", "--set", f"particles.eps={eps}",
                       "--set", f"particles.snapshots={study_snaps}", *common)

        # --- SGD's temperature at the stuck state (while the pool runs) ----------------------
        jobs[sample_key].result()
        jobs[("pde", 0.1)].result()
        run01 = load_run(pde_dir(0.1))
        setup = run01.setup
        red = setup.model.potential.reduction
        data, act = red.data, red.activation
        d = setup.config["model"]["dim"]
        zero = np.zeros((1, 1))
        dpsi0 = float(red.potential_gradient(np.full((1, 1), 1e-9))[0, 0]
                      + red.kernel_gradient(np.full((1, 1), 1e-9), zero)[0, 0])
        risk0 = float(setup.model.risk_offset + 2 * red.potential(zero)[0] + red.kernel(zero, zero)[0])
        s0 = float(act(np.zeros(1))[0])
        slope_p, slope_m = (float(v) for v in act.derivative(np.array([1e-12, -1e-12])))
        scales = data.scales[:, 0]
        c0 = (0.5 * (slope_p**2 + slope_m**2) * float(data.probs @ ((data.labels - s0)**2 * scales**2))
              - dpsi0**2 / d)
        # Psi of the point mass at 0 and the barrier construction r Psi_0'(r) = (d - 1)/beta
        rr = np.linspace(1e-6, 0.4, 801)[:, None]
        f_r = rr[:, 0] * (red.potential_gradient(rr)[:, 0] + red.kernel_gradient(rr, zero)[:, 0])
        i_m = int(np.argmax(f_r))
        r_m, f_max = float(rr[i_m, 0]), float(f_r[i_m])
        beta_c = (d - 1) / f_max
        # Monte Carlo at the SGD stuck state, and probe neurons at radius r in that background
        W = load_particles(sample_dir).vectors[-1]
        rng = np.random.default_rng(7)
        r_probe = np.linspace(0.02, 0.3, 15)   # not 0: sigma'(0) is one-sided
        n_dir = 16
        u = rng.standard_normal((n_dir, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        probes = (r_probe[:, None, None] * u[None]).reshape(-1, d)
        c_all, g_all, c_cross = gradient_noise(W, data, act, rng, P["samples"], probes)
        c_net, g_net = c_all[:len(W)], g_all[:len(W)]
        c_r = c_all[len(W):].reshape(len(r_probe), n_dir).mean(axis=1)
        c_stuck = float(c_net.mean())
        r_w = np.linalg.norm(W, axis=1)
        cos = (W / r_w[:, None]) @ (W / r_w[:, None]).T
        align = float((cos.sum() - len(W)) / (len(W) * (len(W) - 1)))   # mean cosine over pairs i != j
        c_barrier = float(np.interp(r_m, r_probe, c_r))
        cal_c = {"stuck": c_stuck, "barrier": c_barrier}
        for cal in P["calibrations"]:
            for eps in grid:
                beta = 1.0 / (eps * cal_c[cal])
                submit(("noisy", cal, eps), "run", CONFIG, "--out", noisy_dir(cal, eps), "--set", "model.kappa=0.1",
                       "--set", f"model.beta={beta:.6g}", "--set", "run.save_every=0.01", *common)
        walls = {k: f.result() for k, f in jobs.items()}
    t_total = time.perf_counter() - t_start

    # --- part 1: PDE vs SGD ----------------------------------------------------------------
    pde = {k: read_diagnostics(pde_dir(k) / "diagnostics.csv") for k in KAPPAS}
    sgd = {k: [read_diagnostics(sgd_dir(k, eps0, s) / "diagnostics.csv") for s in seeds] for k in KAPPAS}
    us = [json.loads((sgd_dir(k, e, s) / "summary.json").read_text())["microseconds_per_step"]
          for k in KAPPAS for e in ([eps0] if k == 0.4 else grid) for s in seeds]
    print(f"MMN isotropic, non-monotone sigma: N = 800, d = {d}, Delta = 0.5; SGD eps = {eps0:g} "
          f"({T / eps0:.0f} steps), {len(seeds)} seeds; PDE {P['cells']} cells on [0, 4]")
    print(f"wall time {t_total:.0f} s with {args.jobs} jobs (sum over the ddsolve commands "
          f"{sum(walls.values()):.0f} s); SGD {np.median(us):.0f} us/step "
          f"(median over runs, range {min(us):.0f}-{max(us):.0f}; wall time of the run with its diagnostics / steps)")
    print("\n kappa     t   | risk: PDE   SGD median  [min, max]      gap  | mean|w|: PDE  SGD median  gap")
    for k in KAPPAS:
        t_s = sgd[k][0]["t"]
        R = np.array([g["risk"] for g in sgd[k]])
        M = np.array([g["mean_r"] for g in sgd[k]])
        for t in P["report"]:
            j = int(np.argmin(abs(t_s - t)))
            rp, mp_ = np.interp(t_s[j], pde[k]["t"], pde[k]["risk"]), np.interp(t_s[j], pde[k]["t"], pde[k]["mean_r"])
            rm, mm = np.median(R[:, j]), np.median(M[:, j])
            print(f"  {k:3g}  {t_s[j]:6.3f} |   {rp:8.4f} {rm:8.4f}  [{R[:, j].min():.4f}, {R[:, j].max():.4f}] "
                  f"{rm - rp:+8.4f} |   {mp_:6.3f}  {mm:6.3f}  {mm - mp_:+7.3f}")

    if P["refine"]:
        print("\nstep-size check, kappa = 0.4, seed 0: risk(SGD) - risk(PDE) [mean|w| gap]")
        ref = {1: sgd[0.4][0]}
        ref.update({q: read_diagnostics(sgd_dir(0.4, eps0 / q, 0) / "diagnostics.csv") for q in P["refine"]})
        for t in [t for t in P["report"] if t <= t_ref]:
            line = f"  t = {t:5.3f}:"
            for q, g in ref.items():
                j = int(np.argmin(abs(g["t"] - t)))
                line += (f"  eps = {eps0 / q:<7g} {g['risk'][j] - np.interp(g['t'][j], pde[0.4]['t'], pde[0.4]['risk']):+.4f}"
                         f" [{g['mean_r'][j] - np.interp(g['t'][j], pde[0.4]['t'], pde[0.4]['mean_r']):+.4f}]")
            print(line)

    # --- part 2: the eps scan ----------------------------------------------------------------
    print(f"\nstuck state: Psi'(0+) = {dpsi0:.4f}, risk of the point mass at 0 = {risk0:.4f}; gradient noise "
          f"c = tr Cov(G)/d: w = 0 closed form {c0:.2f}; SGD stuck state (eps = {eps0:g}, t = {t_sample:g}, "
          f"mean |w| {np.linalg.norm(W, axis=1).mean():.4f}) {c_stuck:.2f} +- {c_net.std():.2f} over neurons, "
          f"|E G| = {g_net.mean():.3f}; probe at the barrier r = {r_m:.3f}: {c_barrier:.2f}; c(r)/c_stuck at "
          f"r = {r_probe[6]:.2f}, {r_probe[9]:.2f}, {r_probe[12]:.2f}: "
          f"{', '.join(f'{c_r[i] / c_stuck:.2f}' for i in (6, 9, 12))}")
    print(f"shared noise: tr Cov(G_i, G_j)/d over pairs i != j = {c_cross:.2f} ({c_cross / c_stuck:.0%} of c_stuck; "
          f"the noisy PDE's noise is independent across neurons). The stuck SGD state is not isotropic: mean "
          f"cos(w_i, w_j) = {align:.2f} (0 +- {1 / np.sqrt(d):.2f} for independent directions), |mean_i w_i| = "
          f"{np.linalg.norm(W.mean(axis=0)):.4f} vs mean |w_i| = {r_w.mean():.4f}")
    print(f"point-mass threshold: max_r r Psi_0'(r) = {f_max:.4f} at r = {r_m:.3f} -> beta_c = (d-1)/max = "
          f"{beta_c:.0f}; eps_c = 1/(beta_c c) = {1 / (beta_c * c0):.3g} (c_0), {1 / (beta_c * c_stuck):.3g} "
          f"(stuck), {1 / (beta_c * c_barrier):.3g} (barrier)")
    rows, p_sgd, p_noisy = [], [], {cal: [] for cal in P["calibrations"]}
    curves = {}
    for eps in grid:
        runs = []
        for s in seeds:
            dg = read_diagnostics(sgd_dir(0.1, eps, s) / "diagnostics.csv")
            r_fin = load_particles(sgd_dir(0.1, eps, s)).coordinates[-1, :, 0]
            frac = float(np.mean(r_fin > R_OUT))
            runs.append(dict(frac=frac, risk=dg["risk"][-1], mean_r=dg["mean_r"][-1],
                             r_stuck=float(np.mean(r_fin[r_fin <= R_OUT])) if frac < 1 else np.nan, diag=dg))
        left = np.array([r["frac"] >= ESC_MIN for r in runs])
        p_sgd.append(left.mean())
        curves[eps] = {"sgd": runs}
        row = dict(eps=eps, left=left.sum(), fracs=[r["frac"] for r in runs],
                   risk=np.median([r["risk"] for r in runs]),
                   r_stuck=np.nanmedian([r["r_stuck"] for r in runs]) if not all(np.isnan(r["r_stuck"]) for r in runs) else np.nan,
                   r_pred=d * c0 * eps / dpsi0, risk_pred=risk0 + 2 * d * c0 * eps)
        for cal in P["calibrations"]:
            nr = load_run(noisy_dir(cal, eps))
            x, h = nr.setup.coords.axes[0].centers, nr.setup.coords.spacing[0]
            rho = nr.density(-1)
            mass_out = float(h * rho[x > R_OUT].sum())
            p_noisy[cal].append(float(mass_out >= ESC_MIN))
            row[cal] = dict(beta=1 / (eps * cal_c[cal]), mass_out=mass_out, mean_r=nr.diagnostics["mean_r"][-1],
                            risk=nr.diagnostics["risk"][-1])
            curves[eps][cal] = nr.diagnostics
        rows.append(row)
    print(f"\nkappa = 0.1, t = {T:g}: escaped = |w_i| > {R_OUT}; a run left the stuck state if >= {ESC_MIN:.0%} "
          f"of its neurons escaped. Predicted stuck radius d c_0 eps / Psi'(0+), risk R_0 + 2 d c_0 eps.")
    hdr = "    eps    | SGD: left  escaped share per seed          median risk  stuck |w| (pred) |"
    for cal in P["calibrations"]:
        hdr += f" noisy PDE ({cal}): beta  mass>{R_OUT}  mean r  risk |"
    print(hdr)
    for row in rows:
        line = (f"  {row['eps']:.3g}  |    {row['left']}/{len(seeds)}   "
                f"{' '.join(f'{f:5.3f}' for f in row['fracs']):<36s} {row['risk']:7.4f}    "
                f"{row['r_stuck']:6.4f} ({row['r_pred']:.4f}) |")
        for cal in P["calibrations"]:
            q = row[cal]
            line += f"          {q['beta']:6.0f}  {q['mass_out']:7.4f}  {q['mean_r']:6.3f}  {q['risk']:6.3f} |"
        print(line)
    if P["batch"]:
        B, e1 = P["batch"]
        fr = [float(np.mean(load_particles(out / f"sgd_kappa0.1_eps{B * e1:g}_batch{B}" / f"seed{s}").coordinates[-1, :, 0]
                            > R_OUT)) for s in seeds]
        print(f"  mini-batch B = {B}, eps = {B * e1:.3g} (eps/B = {e1:.3g}, the same beta_eff = B/(eps c)): "
              f"{sum(f >= ESC_MIN for f in fr)}/{len(seeds)} left, escaped share {' '.join(f'{f:5.3f}' for f in fr)}")
    est, br = first_cross(grid, p_sgd)
    print(f"\nSGD: eps* (half of the runs leave) = {est:.3g} in {br}" if est else f"\nSGD: eps* {br}")
    for cal in P["calibrations"]:
        e2, b2 = first_cross(grid, p_noisy[cal])
        print(f"noisy PDE, beta = 1/(eps c_{cal}), c = {cal_c[cal]:.2f}: leaves w = 0 for eps in "
              + (f"{b2} (midpoint {e2:.3g})" if e2 else b2))

    # --- figures ---------------------------------------------------------------------------
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for c_, k in zip(("C0", "C3"), KAPPAS):
        t_s = sgd[k][0]["t"]
        sel = t_s > 0
        for ax, col in ((ax1, "risk"), (ax2, "mean_r")):
            v = np.array([g[col] for g in sgd[k]])[:, sel]
            tp = pde[k]["t"] > 0
            ax.plot(pde[k]["t"][tp], pde[k][col][tp], "-", color=c_, lw=1.8, label=f"PDE, κ = {k:g}")
            ax.fill_between(t_s[sel], v.min(0), v.max(0), color=c_, alpha=0.25, lw=0,
                            label=f"SGD min–max, {len(seeds)} seeds")
            ax.plot(t_s[sel], np.median(v, 0), "o--", color=c_, ms=4, lw=0.8, label=f"SGD median, κ = {k:g}")
    ax1.axhline(risk0, color="gray", ls=":", lw=1, label=f"point mass at w = 0: {risk0:.2f}")
    ax1.set(xscale="log", yscale="log", xlabel="t = SGD steps × ε", ylabel="population risk",
            title=f"N = 800, d = {d}, Δ = 0.5, ε = {eps0:g}")
    ax2.set(xscale="log", xlabel="t = SGD steps × ε", ylabel="mean |w|", title="mean |w_i|")
    ax1.legend(fontsize="small")
    ax2.legend(fontsize="small")
    fig.savefig(out / "mmn_sgd_isotropic.png", dpi=110)

    fig = Figure(figsize=(16, 4.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for n, eps in enumerate(grid):
        col = f"C{n}"
        runs = curves[eps]["sgd"]
        t_s = runs[0]["diag"]["t"]
        v = np.array([r["diag"]["mean_r"] for r in runs])
        sel = t_s > 0
        ax1.fill_between(t_s[sel], v.min(0)[sel], v.max(0)[sel], color=col, alpha=0.2, lw=0)
        ax1.plot(t_s[sel], np.median(v, 0)[sel], "o-", color=col, ms=3, lw=1, label=f"SGD ε = {eps:.3g}")
        nd = curves[eps][P["calibrations"][0]]
        ax1.plot(nd["t"][nd["t"] > 0], nd["mean_r"][nd["t"] > 0], "--", color=col, lw=1.2)
    ax1.plot([], [], "k--", label=f"noisy PDE, β = 1/(ε c_{P['calibrations'][0]})")
    ax1.set(xscale="log", yscale="log", xlabel="t", ylabel="mean |w|", title="κ = 0.1: SGD (median, min–max) "
            "and noisy PDE")
    ax1.legend(fontsize="small")
    ax2.plot(grid, p_sgd, "ko-", label=f"SGD: share of runs that left (≥ {ESC_MIN:.0%} escaped)")
    ax2.plot(grid, [np.median(r["fracs"]) for r in rows], "s-", color="C1", label="SGD: median share of escaped neurons")
    for m_, cal in zip(("v", "^"), P["calibrations"]):
        ax2.plot(grid, [r[cal]["mass_out"] for r in rows], m_ + "--", label=f"noisy PDE (c_{cal}): mass at r > {R_OUT}")
    for cal, ls in zip(("stuck", "barrier"), (":", "-.")):
        ax2.axvline(1 / (beta_c * cal_c[cal]), color="gray", ls=ls, lw=1, label=f"point-mass ε_c (c_{cal})")
    ax2.set(xscale="log", xlabel="ε", ylabel="share at t = %g" % T, ylim=(-0.05, 1.05), title="leaving w = 0")
    ax2.legend(fontsize="small", loc="center right")
    ax3.plot(rr[:, 0], f_r, "k-", lw=2, label="r Ψ₀'(r) (ρ = δ₀)")
    for n, eps in enumerate(grid):
        ax3.axhline((d - 1) * eps * c_stuck, color=f"C{n}", lw=0.8, ls="--",
                    label=f"(d-1)/β_eff, ε = {eps:.3g}")
    ax3.set(xlabel="r = |w|", ylabel="r Ψ₀'(r)", xlim=(0, 0.3), ylim=(0, 1.5 * f_max),
            title="barrier: stuck state exists while (d-1)/β < max")
    ax3b = ax3.twinx()
    ax3b.plot(r_probe, c_r / c0, "o-", color="C5", ms=3, label="c(r)/c₀ (probe neurons)")
    ax3b.set_ylabel("c(r) / c₀", color="C5")
    ax3.legend(fontsize="x-small", loc="lower left")
    ax3b.legend(fontsize="small", loc="upper right")
    fig.savefig(out / "mmn_sgd_isotropic_eps.png", dpi=110)
    print(f"figures: {out / 'mmn_sgd_isotropic.png'}, {out / 'mmn_sgd_isotropic_eps.png'}")
