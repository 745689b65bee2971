r"""Rotskoff & Vanden-Eijnden: which part of the error of the RBF network scales as 1/n.

Setting (as rve_three_spin.py). Target: the spherical 3-spin function
f(x) = d^-1 sum a_pqr x_p x_q x_r on S^{d-1}(sqrt d) (target seed 0). Network:
f_n(x) = (1/n) sum c_i exp(-kappa |x - y_i|^2 / 2), kappa = 5/d, y_i uniform on the sphere,
c_i = 0 at t = 0. Training: the exact population gradient flow of particles.charges.RBFCharges
(closed-form F, K; forward Euler, dt = 0.05), charges at rate 1/E[phi]^2 (RVE's equal time
scales for the normalised unit). The only randomness is the initial draw of the y_i
(seeds 1..S). Loss l = (1/2) E_x |f - f_n|^2, exactly.

What scales as 1/n. With Ef_n the mean network over initialisations,
    E l(f_n) = l(E f_n) + (1/2) E ||f_n - E f_n||^2,
the second term, the *fluctuation part* Var_n(t) = (1/2) E||f_n(t) - E f_n(t)||^2, is
RVE's central-limit term: at any fixed t it is v(t)/n + o(1/n). The first term differs
from the loss of the mean-field limit by O(1/n) too, but at a fixed t the loss of a single
network also carries an O(n^-1/2) random term <f - Ef_n, f_n - Ef_n> (zero mean), so
E l_n - l_inf cannot be resolved from a few seeds; the fluctuation part can. It is
measured here *exactly* from the seeds: for networks f_1..f_S (Gram matrix
<f_s, f_s'> = c_s^T K(y_s, y_s') c_s' / n^2, closed-form K),
Var_n = (1/2) sum_s ||f_s - f_bar||^2 / (S - 1). RVE's second claim is that v(t) decreases
with t (the fluctuations are "self-quenching"), so that after long training the error is
o(1/n); the script prints n Var_n at several t.

Fits: least squares of log Var_n(t) against log n at each fixed t (over all n), slope p
and a 95% confidence interval from the t-distribution on the residuals (len(ns) - 2
degrees of freedom), and a delete-one-seed jackknife (seed s removed at every n; standard
error times the t quantile with S - 1 dof). A bootstrap over seeds is not used: with
S = 4 a resample often repeats one seed, and the variance estimate collapses. The loss
at the final time T (mean and spread over seeds, each seed a point of the regression) is
fitted the same way and shown with its time curves, together with the local slope
d log l / d log t over the last factor 2 of t: where that slope is far from 0 the loss is
still limited by the training time.

Measured on this machine. Default run (d = 3, 5, 10; n = 32, 64, 128, 256, 512; 4 seeds;
T = 20). Slope p of the fluctuation part against n (all n) with its 95% t-CI:

    d    t = 5                  t = 10                 t = 20
    3    -0.92 [-1.11, -0.72]   -0.92 [-1.21, -0.64]   -1.14 [-1.97, -0.32]
    5    -1.00 [-1.40, -0.61]   -1.06 [-1.16, -0.95]   -1.10 [-1.63, -0.57]
    10   -0.97 [-1.02, -0.91]   -1.05 [-1.13, -0.96]   -1.29 [-1.80, -0.79]

jackknife CIs at t = 10: [-1.99, +0.14], [-1.23, -0.88], [-1.16, -0.93] for d = 3, 5, 10
(at d = 10, t = 20 without n = 32, which lags behind the others: -1.02 [-1.12, -0.92]). So
Var_n = v(t)/n: over n = 32..512 and t = 1..20, n Var_n stays in 0.16-0.56 at d = 3 (except
n = 64 at t = 10, 20: 0.53, 1.18, a seed on a plateau), 0.29-1.71 at d = 5, 0.88-2.30 at
d = 10 (except n = 32 at t = 20: 2.64). The loss at T = 20 is NOT 1/n: it is the mean-field loss, still
falling in t (d log l / d log t = -0.6 to -2.5 over [10, 20]); slopes in n -0.25
[-0.62, +0.12], -0.22 [-0.32, -0.13], -0.07 [-0.10, -0.05] for d = 3, 5, 10 (e.g. d = 5,
n = 512: mean loss 6.73e-2 = l(E f_n) 6.64e-2 + Var_n 9.2e-4).

Long runs, ``--dims 5 --ns 32,64,128,256 --seeds 3 --t-final 250`` (and the same with
``--dims 3``). d = 5: loss 4.8e-3, 6.1e-4, 2.2e-4, 1.7e-4 for n = 32..256, of which the
fluctuation part 2.4e-3, 2.6e-4, 4.6e-5, 1.4e-5 (so l(E f_n) = 2.4e-3, 3.5e-4, 1.7e-4,
1.5e-4); d log l / d log t over [125, 250] = -0.77, -1.54, -2.27, -2.46, so the large-n
losses are still limited by the training time (they approach the mean-field loss at
t = 250, ~1.5e-4) and no power of n is claimed for them (a fit over n gives -1.60
[-2.01, -1.18], meaningless here). n Var_n(250) = 0.078, 0.016, 0.0059, 0.0037 (slope
-2.47 [-3.54, -1.39]), down from 0.3-0.7 at t = 20: the fluctuations self-quench, faster
for larger n, as RVE argue. d = 3 (T = 250): loss 4.4e-4, 4.6e-4, 1.5e-4, 1.6e-4 with
fluctuation part 2.7e-4, 2.6e-4, 1.8e-6, 3.2e-6: for n = 32, 64 some seeds stay on a
plateau and escape late (seed 1 run to t = 500: loss ~4.4e-2 from t ~ 30 to t ~ 160,
then 1.4e-3 at t = 232), for n >= 128
the loss is the mean-field loss, still falling (d log l / d log t = -0.5).

Runtimes on this 2-core machine shared with other sessions: default 99 s wall (93 s CPU) at
a load of ~4, 6.5 min at a load of ~7; the long d = 5 run 8.6 min wall (2.5 min CPU) at a
load of ~7. ``--quick`` (d = 3, 5, n = 32..128, 3 seeds, T = 2): 15 s.
"""
import argparse
import csv
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from scipy import stats

from ddsolve.app.results import single_blas_thread
from particles.charges import RBFCharges

CHECK_TIMES = (1.0, 2.0, 5.0, 10.0, 20.0)


def fit_slope(logn: np.ndarray, logy: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of logy against logn and its 95% t-interval half width; also
    the intercept."""
    A = np.stack([logn, np.ones_like(logn)], 1)
    coef, *_ = np.linalg.lstsq(A, logy, rcond=None)
    dof = logn.size - 2
    if dof < 1:
        return float(coef[0]), float("nan"), float(coef[1])
    res = logy - A @ coef
    s2 = float(res @ res) / dof
    se = np.sqrt(s2 / np.sum((logn - logn.mean()) ** 2))
    return float(coef[0]), float(stats.t.ppf(0.975, dof) * se), float(coef[1])


def fluctuation(model: RBFCharges, states: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """(1/2) sum_s ||f_s - f_bar||^2 / (S - 1) exactly, and the Gram matrix <f_s, f_s'>."""
    S, n, d = len(states), states[0].shape[0], model.d
    Y = np.concatenate([x[:, :d] for x in states])
    C = np.concatenate([x[:, d] for x in states]) / n
    K = model.K(Y)
    blocks = (C[:, None] * K * C[None, :]).reshape(S, n, S, n).sum(axis=(1, 3))
    return variance_from_gram(blocks), blocks


def variance_from_gram(G: np.ndarray) -> float:
    """(1/2) sum_s ||f_s - f_bar||^2 / (S - 1) from the Gram matrix of the f_s."""
    S = G.shape[0]
    total = np.trace(G) - G.sum() / S              # sum_s ||f_s - f_bar||^2
    return 0.5 * total / (S - 1)


def run_one(d: int, n: int, seed: int, dt: float, t_final: float, checks: list[float]):
    """Gradient flow of one network: loss curve and the states at the check times."""
    probe = RBFCharges(n, d=d, holdout=1)
    m = RBFCharges(n, d=d, dt=dt, charge_rate=1.0 / probe.mean_phi() ** 2, c_std=0.0, holdout=1)
    st = m.initial_state(np.random.default_rng(seed))
    steps = int(round(t_final / dt))
    check_steps = {int(round(t / dt)): t for t in checks}
    marks = np.union1d(np.unique(np.round(np.geomspace(1, steps, 40)).astype(int)), list(check_steps))
    tt, loss, saved, done = [0.0], [m.loss_exact(st.x)], {}, 0
    for k in marks:
        m.advance(st, int(k) - done, None)
        done = int(k)
        tt.append(done * dt)
        loss.append(m.loss_exact(st.x))
        if done in check_steps:
            saved[check_steps[done]] = st.x.copy()
    return m, np.array(tt), np.array(loss), saved


if __name__ == "__main__":
    single_blas_thread()  # small BLAS calls: one thread is faster on a busy machine
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/rve_three_spin_scaling")
    ap.add_argument("--quick", action="store_true", help="d = 3, 5; n = 32..128; 3 seeds; T = 2")
    ap.add_argument("--dims", default="3,5,10")
    ap.add_argument("--ns", default="32,64,128,256,512")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--t-final", type=float, default=20.0)
    ap.add_argument("--dt", type=float, default=0.05)
    args = ap.parse_args()
    if args.quick:
        args.dims, args.ns, args.seeds, args.t_final = "3,5", "32,64,128", 3, 2.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dims = [int(v) for v in args.dims.split(",")]
    ns = np.array([int(v) for v in args.ns.split(",")])
    seeds = list(range(1, args.seeds + 1))
    T = args.t_final
    checks = sorted({t for t in CHECK_TIMES if t < T} | {T})
    logn = np.log(ns)
    t0 = time.perf_counter()

    rows, results = [], {}
    for d in dims:
        curves, var, grams = {}, {}, {}
        for n in ns:
            states = {t: [] for t in checks}
            curves[n] = []
            for seed in seeds:
                m, tt, loss, saved = run_one(d, int(n), seed, args.dt, T, checks)
                curves[n].append(loss)
                for t in checks:
                    states[t].append(saved[t])
                rows += [(d, int(n), seed, a, b) for a, b in zip(tt, loss)]
            for t in checks:
                var[n, t], grams[n, t] = fluctuation(m, states[t])
            curves[n] = np.array(curves[n])
            print(f"d = {d:2d}, n = {n:4d}: loss at T = {T:g} mean {curves[n][:, -1].mean():.3e} "
                  f"[{curves[n][:, -1].min():.2e}, {curves[n][:, -1].max():.2e}], fluctuation part "
                  f"Var_n(T) = {var[n, T]:.3e}  [{time.perf_counter() - t0:.0f} s]", flush=True)
        results[d] = dict(tt=tt, curves=curves, var=var, grams=grams, C_f=m.C_f)

    with open(out / "diagnostics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["d", "n", "seed", "t", "loss_exact"])
        w.writerows(rows)

    print(f"\n{len(seeds)} seeds per n; slopes p of log y = p log n + b, 95% CI from the t-distribution "
          f"on the residuals ({ns.size - 2} dof) and [jackknife over seeds]")
    summary = {}
    for d in dims:
        r = results[d]
        print(f"\nd = {d} (C_f = E f^2 / 2 = {r['C_f']:.4f}): fluctuation part Var_n(t) = (1/2) E||f_n - E f_n||^2")
        print("     t   " + "".join(f"  n={n:<4d} n*Var " for n in ns) + "   slope p  [t-CI]            [jackknife CI]   without the smallest n [t-CI]")
        for t in checks:
            v = np.array([r["var"][n, t] for n in ns])
            p, half, _ = fit_slope(logn, np.log(v))
            jack = []                      # delete seed s at every n (the seeds are independent)
            for s_out in range(len(seeds)):
                keep = [s for s in range(len(seeds)) if s != s_out]
                vj = [variance_from_gram(r["grams"][n, t][np.ix_(keep, keep)]) for n in ns]
                jack.append(fit_slope(logn, np.log(vj))[0])
            jack = np.array(jack)
            se = np.sqrt((len(seeds) - 1) / len(seeds) * np.sum((jack - jack.mean()) ** 2))
            jhalf = stats.t.ppf(0.975, len(seeds) - 1) * se
            lo, hi = p - jhalf, p + jhalf
            summary[d, t] = (p, half, lo, hi)
            big = ns >= 2 * ns[0]
            p2, half2, _ = fit_slope(logn[big], np.log(v[big]))
            print(f"{t:6g}   " + "".join(f"  {n * r['var'][n, t]:10.3e}  " for n in ns)
                  + f"   {p:+.3f}  [{p - half:+.2f}, {p + half:+.2f}]   [{lo:+.2f}, {hi:+.2f}]"
                  + f"   n >= {2 * ns[0]}: {p2:+.3f} [{p2 - half2:+.2f}, {p2 + half2:+.2f}]")
        final = np.array([r["curves"][n][:, -1] for n in ns])          # (n, seeds)
        p, half, _ = fit_slope(np.repeat(logn, len(seeds)), np.log(final.ravel()))
        tt = r["tt"]
        j = int(np.argmin(abs(tt - T / 2)))
        local = [np.mean(np.log(r["curves"][n][:, -1] / r["curves"][n][:, j]) / np.log(tt[-1] / tt[j]))
                 for n in ns]
        summary[d, "loss"] = (p, half)
        print("  mean loss at T = l(E f_n) + Var_n (E l_n = l(E f_n) + Var_n exactly; l(E f_n) estimated "
              "as mean loss - Var_n):")
        print("   " + ", ".join(f"n={n}: {final[i].mean():.2e} = {final[i].mean() - r['var'][n, T]:.2e} + "
                                f"{r['var'][n, T]:.2e}" for i, n in enumerate(ns)))
        print(f"loss at T = {T:g}: " + ", ".join(f"n={n}: {final[i].mean():.2e}" for i, n in enumerate(ns))
              + f"; slope {p:+.2f} [{p - half:+.2f}, {p + half:+.2f}] (all seeds as points)")
        print("  d log l / d log t over t in [T/2, T]: " + ", ".join(f"n={n}: {s:+.2f}" for n, s in zip(ns, local))
              + "  (far from 0: still training)")

    fig = Figure(figsize=(5.2 * len(dims), 8.4), layout="constrained")
    axes = fig.subplots(2, len(dims), squeeze=False)
    for col, d in enumerate(dims):
        r = results[d]
        ax = axes[0, col]
        for k, t in enumerate(checks):
            v = np.array([r["var"][n, t] for n in ns])
            p, half, lo, hi = summary[d, t]
            ax.loglog(ns, v, "o-", color=f"C{k}", label=f"t = {t:g}: p = {p:+.2f} ± {half:.2f}")
        v = np.array([r["var"][n, checks[-1]] for n in ns])
        ax.loglog(ns, v[0] * ns[0] / ns, "k--", lw=1, label=r"$\propto n^{-1}$")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set(xlabel="n", ylabel="fluctuation part (1/2) E||f_n - E f_n||²",
               title=f"d = {d}: fluctuation part vs n ({len(seeds)} seeds)")
        ax.legend(fontsize="small")
        ax = axes[1, col]
        for k, n in enumerate(ns):
            c = r["curves"][n]
            ax.fill_between(r["tt"][1:], c.min(0)[1:], c.max(0)[1:], color=f"C{k}", alpha=0.25)
            ax.loglog(r["tt"][1:], np.median(c, 0)[1:], color=f"C{k}", label=f"n = {n}")
        ax.set(xlabel="t", ylabel="loss (median, band min-max over seeds)", title=f"d = {d}: loss vs t")
        ax.legend(fontsize="small")
    fig.savefig(out / "rve_three_spin_scaling.png", dpi=100)
    print(f"figure: {out / 'rve_three_spin_scaling.png'}  [{time.perf_counter() - t0:.0f} s]")
