"""Output-weight laws of a sigmoid network trained by SGD on real digits, and their W1 distances.

The experiment of Tassopoulos (Imperial UROP report, 2023), §2.2, on data that ships with
scikit-learn (works offline): the 8x8 digits "3" (y = +1) against "8" (y = -1), pixels standardised, 80/20 split. A
network y_hat = (1/N) sum_i a_i sigmoid(<w_i, x>) with w ~ N(0, I/64) and a ~ N(0, 1),
both trained by online SGD (particles.sgd, step s = eps = 0.01, t = steps x eps), for
N = 50, 200, 1000, 5000 and 3 seeds each (the seed draws the initial weights and the order
of the training samples). In the mean-field scaling the law of the a_i has a limit as N
grows. The script prints the test risk and the quantiles of the a_i at epochs 1, 10, 100,
and the Wasserstein-1 distance between the empirical laws of the a_i

* of successive widths, W1(N, N') for the same seed (mean and min..max over the seeds);
* of two runs with different seeds at the same width, the sampling floor at that N (mean
  and min..max over the seed pairs): the distance two independent samples of one law have.

Epoch 0 is the control: there both laws are exactly N(0, 1), so every distance is sampling
noise. If the successive-N distances at epoch k are at the level of the floors of the two
widths, the histograms have stopped changing with N up to sampling noise; if they are
above, the law still moves with N. Independent samples of sizes N1 and N2 of one law are
at W1 ~ c sqrt(1/N1 + 1/N2), and the floor at N is ~ c sqrt(2/N), so the noise level of the
pair (N1, N2) is taken as sqrt((floor(N1)^2 + floor(N2)^2) / 2); the script prints the
ratio of the mean successive distance to it (about 1 at epoch 0). Writes diagnostics.csv
(one row per seed, N and epoch) and w1.csv, and saves digits_histogram.png (histograms of
seed 1, and W1 against N).
W1 between samples is validation.metrics.wasserstein_samples (exact for empirical laws).
``--quick``: N = 50, 200 and 2 seeds (a smoke test).

Measured on this machine (3 seeds; W1 mean over seeds / seed pairs; "noise" as above):

    epoch   W1(50, 200)  W1(200, 1000)  W1(1000, 5000)   floors at N = 50 / 200 / 1000 / 5000
      0     0.190        0.104          0.037            0.169 / 0.144 / 0.045 / 0.018
      1     0.197        0.132          0.075            0.211 / 0.206 / 0.072 / 0.043
     10     0.208        0.146          0.061            0.232 / 0.216 / 0.075 / 0.040
    100     0.282        0.156          0.073            0.332 / 0.223 / 0.083 / 0.042

The ratios successive / noise are 0.86-1.27 at every epoch (0.98-1.21 at the control epoch
0): the distances between the laws of successive widths are at the seed-to-seed sampling
floor, both shrinking roughly like N^-1/2, so up to N = 5000 no N-dependence of the trained
output-weight law is resolved above the sampling noise. The histograms become bimodal
(modes near a = -2.3 and +2.5 at epoch 10); test risk 0.022-0.025 at epoch 100.
"""
import argparse
import csv
import itertools
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.io import DiagnosticsCSV
from ddsolve.app.results import single_blas_thread
from ddsolve.networks.activations import make_activation
from particles.datasets import EmpiricalData, digits
from particles.risk import population_risk
from particles.sgd import TwoLayerSGD
from validation.metrics import wasserstein_samples

WIDTHS = (50, 200, 1000, 5000)
EPOCHS = (0, 1, 10, 100)
SEEDS = (1, 2, 3)


def summary(values) -> str:
    v = np.asarray(values)
    return f"{v.mean():.3f} [{v.min():.3f}, {v.max():.3f}]"


if __name__ == "__main__":
    single_blas_thread()  # small BLAS calls: one thread is faster on a busy machine
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/digits_histogram")
    ap.add_argument("--quick", action="store_true", help="N = 50, 200 and 2 seeds")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    widths, seeds = (WIDTHS[:2], SEEDS[:2]) if args.quick else (WIDTHS, SEEDS)
    x, y = digits(classes=(3, 8))
    train, test = EmpiricalData(x, y, name="digits 3 vs 8").split(0.8, np.random.default_rng(0))
    sigma = make_activation("sigmoid")
    diag = DiagnosticsCSV(out / "diagnostics.csv")
    a_at = {}                                   # (seed, N, epoch) -> output weights
    t0 = time.perf_counter()
    print(f"digits 3 vs 8: {train.size} training, {test.size} test images, d = {train.dim}")
    print(" seed      N  epoch   train risk   test risk    a: 10% / 50% / 90% quantiles")
    for seed in seeds:
        for n in widths:
            sgd = TwoLayerSGD(train, sigma, n, 0.01, train_a=True, kappa=1.0, a_mean=0.0, a_std=1.0,
                              risk="none")
            rng = np.random.default_rng(seed)
            state = sgd.initial_state(rng)
            for epoch in EPOCHS:
                sgd.advance(state, epoch * train.size - state.step, rng)
                w, a = sgd.split(state.x)
                r_train = population_risk(train, sigma, w, a, method="sample",
                                          rng=np.random.default_rng(2), samples=train.size)
                r_test = population_risk(test, sigma, w, a, method="sample",
                                         rng=np.random.default_rng(2), samples=test.size)
                q = np.quantile(a, [0.1, 0.5, 0.9])
                a_at[seed, n, epoch] = np.array(a)
                diag.write({"seed": seed, "N": n, "epoch": epoch, "t": state.step * sgd.dt,
                            "train_risk": r_train, "test_risk": r_test, "mean_a": a.mean(),
                            "m2_a": np.mean(a ** 2)})
                if epoch:
                    print(f"{seed:5d}  {n:5d}  {epoch:5d}   {r_train:10.4f}   {r_test:9.4f}    "
                          f"{q[0]: .2f} / {q[1]: .2f} / {q[2]: .2f}")
            print(f"       [{time.perf_counter() - t0:.0f} s]", flush=True)
    diag.close()

    # W1 of successive widths (same seed) and the seed-to-seed floor at each width
    pairs = list(itertools.combinations(seeds, 2))
    succ = {(e, k): [wasserstein_samples(a_at[s, widths[k], e], a_at[s, widths[k + 1], e]) for s in seeds]
            for e in EPOCHS for k in range(len(widths) - 1)}
    floor = {(e, n): [wasserstein_samples(a_at[s, n, e], a_at[s2, n, e]) for s, s2 in pairs]
             for e in EPOCHS for n in widths}
    with open(out / "w1.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["epoch", "kind", "N1", "N2", "seed1", "seed2", "w1"])
        for (e, k), vals in succ.items():
            wr.writerows([e, "successive", widths[k], widths[k + 1], s, s, v] for s, v in zip(seeds, vals))
        for (e, n), vals in floor.items():
            wr.writerows([e, "floor", n, n, s, s2, v] for (s, s2), v in zip(pairs, vals))
    print(f"\nW1 between the laws of the output weights a_i: mean [min, max] over {len(seeds)} seeds "
          f"(successive N, same seed) or {len(pairs)} seed pairs (floor, same N)")
    for e in EPOCHS:
        print(f"epoch {e}:" + ("  (control: both laws N(0, 1))" if e == 0 else ""))
        for k in range(len(widths) - 1):
            n1, n2 = widths[k], widths[k + 1]
            noise = np.sqrt(0.5 * (np.mean(floor[e, n1]) ** 2 + np.mean(floor[e, n2]) ** 2))
            print(f"   W1(N = {n1:4d}, N = {n2:4d}) = {summary(succ[e, k])}   floors "
                  f"N = {n1:4d}: {summary(floor[e, n1])},  N = {n2:4d}: {summary(floor[e, n2])}   "
                  f"noise {noise:.3f}, ratio {np.mean(succ[e, k]) / noise:.2f}")
    print(f"[{time.perf_counter() - t0:.0f} s]")

    fig = Figure(figsize=(16, 7.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    axes = top.subplots(1, len(EPOCHS), sharey=True)
    bins = np.linspace(-8, 8, 41)
    s1 = seeds[0]
    for ax, epoch in zip(axes, EPOCHS):
        for k, n in enumerate(widths):
            ax.hist(a_at[s1, n, epoch], bins=bins, density=True, histtype="step", lw=1.4,
                    color=f"C{k}", label=f"N = {n}")
        ax.set(xlabel="output weight a_i", title=f"epoch {epoch} (seed {s1})")
    axes[0].set_ylabel("density")
    axes[0].legend()
    axes = bottom.subplots(1, len(EPOCHS), sharey=True)
    nw = np.array(widths, dtype=float)
    mid = np.sqrt(nw[:-1] * nw[1:])
    for ax, e in zip(axes, EPOCHS):
        s_mean = [np.mean(succ[e, k]) for k in range(len(widths) - 1)]
        s_err = np.array([[np.mean(succ[e, k]) - np.min(succ[e, k]), np.max(succ[e, k]) - np.mean(succ[e, k])]
                          for k in range(len(widths) - 1)]).T
        f_mean = [np.mean(floor[e, n]) for n in widths]
        f_err = np.array([[np.mean(floor[e, n]) - np.min(floor[e, n]), np.max(floor[e, n]) - np.mean(floor[e, n])]
                          for n in widths]).T
        ax.errorbar(mid, s_mean, yerr=s_err, fmt="o-", color="C3", capsize=3,
                    label="W1(N, next N), same seed (at the geometric mean of N)")
        ax.errorbar(nw, f_mean, yerr=f_err, fmt="s--", color="0.4", capsize=3,
                    label="floor: W1 of two seeds at the same N")
        noise = [np.sqrt(0.5 * (f_mean[k] ** 2 + f_mean[k + 1] ** 2)) for k in range(len(widths) - 1)]
        ax.plot(mid, noise, "x", color="0.2", ms=7, label="noise level of the pair, sqrt((floor1² + floor2²)/2)")
        ax.loglog(nw, f_mean[0] * np.sqrt(nw[0] / nw), ":", color="0.6", label=r"$\propto N^{-1/2}$")
        ax.set(xscale="log", yscale="log", xlabel="N", title=f"W1 of the a_i laws, epoch {e}")
    axes[0].set_ylabel("W1")
    axes[0].legend(fontsize="x-small", loc="lower left")
    fig.savefig(out / "digits_histogram.png", dpi=100)
    print(f"figure: {out / 'digits_histogram.png'}")
