"""Histograms of the output weights of a sigmoid network trained by SGD on real digits.

The experiment of seed 004 §2.2 on data that ships with scikit-learn (works offline):
the 8x8 digits "3" (y = +1) against "8" (y = -1), pixels standardised, 80/20 split. A
network y_hat = (1/N) sum_i a_i sigmoid(<w_i, x>) with w ~ N(0, I/64) and a ~ N(0, 1),
both trained by online SGD (particles.sgd, step s = eps = 0.01, t = steps x eps), for
N = 50, 200, 1000. In the mean-field scaling the law of the a_i has a limit as N grows:
the script prints the test risk (held-out sample) and the quantiles of the a_i at several
epochs, writes diagnostics.csv (one row per N and epoch) and saves the histograms.
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.io import DiagnosticsCSV
from ddsolve.networks.activations import make_activation
from particles.datasets import EmpiricalData, digits
from particles.risk import population_risk
from particles.sgd import TwoLayerSGD

WIDTHS = (50, 200, 1000)
EPOCHS = (1, 10, 100)

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/digits_histogram")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = digits(classes=(3, 8))
    train, test = EmpiricalData(x, y, name="digits 3 vs 8").split(0.8, np.random.default_rng(0))
    sigma = make_activation("sigmoid")
    csv = DiagnosticsCSV(out / "diagnostics.csv")
    finals = {}
    print(f"digits 3 vs 8: {train.size} training, {test.size} test images, d = {train.dim}")
    print("    N  epoch   train risk   test risk    a: 10% / 50% / 90% quantiles")
    for n in WIDTHS:
        sgd = TwoLayerSGD(train, sigma, n, 0.01, train_a=True, kappa=1.0, a_mean=0.0, a_std=1.0,
                          risk="none")
        rng = np.random.default_rng(1)
        state = sgd.initial_state(rng)
        finals[n] = {}
        for epoch in EPOCHS:
            sgd.advance(state, epoch * train.size - state.step, rng)
            w, a = sgd.split(state.x)
            r_train = population_risk(train, sigma, w, a, method="sample", rng=np.random.default_rng(2),
                                      samples=train.size)
            r_test = population_risk(test, sigma, w, a, method="sample", rng=np.random.default_rng(2),
                                     samples=test.size)
            q = np.quantile(a, [0.1, 0.5, 0.9])
            finals[n][epoch] = a.copy()
            csv.write({"N": n, "epoch": epoch, "t": state.step * sgd.dt, "train_risk": r_train,
                       "test_risk": r_test, "mean_a": a.mean(), "m2_a": np.mean(a**2)})
            print(f"{n:5d}  {epoch:5d}   {r_train:10.4f}   {r_test:9.4f}    "
                  f"{q[0]: .2f} / {q[1]: .2f} / {q[2]: .2f}")
    csv.close()

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(EPOCHS), sharey=True)
    bins = np.linspace(-8, 8, 41)
    for ax, epoch in zip(axes, EPOCHS):
        for k, n in enumerate(WIDTHS):
            ax.hist(finals[n][epoch], bins=bins, density=True, histtype="step", lw=1.4,
                    color=f"C{k}", label=f"N = {n}")
        ax.set(xlabel="output weight a_i", title=f"epoch {epoch}")
    axes[0].set_ylabel("density")
    axes[0].legend()
    fig.savefig(out / "digits_histogram.png", dpi=110)
    print(f"figure: {out / 'digits_histogram.png'}")
