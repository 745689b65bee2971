"""Final-loss statistics of interacting agents on the Mueller-Brown loss over many
initialisations, as one ``ddsolve sweep`` on Dask.

Runs sweep_muller_brown.toml with ``ddsolve sweep --command particles --seeds K --zip
--param particles.method=hmm,mean-field --param particles.dt=0.01,1e-5``: K seeds of the
multiscale MF-Hom-SGLD agents and K of the plain Kantas-Parpas-Pavliotis agents, to the
same PDE time t = 2, on a local Dask cluster (``--workers``) or an existing scheduler
(``--scheduler``). A rerun with the same ``--out`` skips the finished runs. For every
run it reads the final agents from particles.h5 and computes the final loss (the mean
of Phi over the agents) and the fraction of agents in the global basin after quenching
them by gradient descent; it prints the mean, standard deviation and range of both over
the seeds for each method, and plots the final losses.

With the defaults (6 seeds each, 30 runs, 4.1 min here on 2 workers):

    agents                        final loss: mean  std    in global basin   s/run
    MF-Hom-SGLD (gamma = 0.05)    -122.46           4.58   0.81 (0.74-0.88)    1.1
    plain agents (KPP)            -116.79           2.55   0.84 (0.80-0.89)   43.4
    SGD (SGLD, eps = 1e-5)        -113.63           1.88   0.80 (0.75-0.83)   10.5
    Nesterov (momentum 0.5)        -64.90           6.09   0.61 (0.55-0.65)    6.8
    MaSS (kappa~ = 10)             -93.95           3.89   0.74 (0.71-0.79)   11.1

All escape the shallow minimum (Phi = -108.17) at this temperature; no mean loss is near
the global minimum (-146.70) because at 1/beta = 20 the agents spread over the basin. The
momentum methods end higher: their stochastic gradient carries SGLD's noise, which the
momentum accumulates, so they run hotter than SGD at the same eps
(:mod:`particles.landscape`). SGD, Nesterov and MaSS are the landscape optimisers of
``ddsolve particles`` (independent agents on V; the interaction is not used).
"""
import argparse
import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ddsolve.app.cli import main as ddsolve_main
from ddsolve.model.potentials import MullerBrownPotential
from particles.storage import load_particles

CONFIG = Path(__file__).with_name("sweep_muller_brown.toml")
GLOBAL, SHALLOW, MIDDLE = (-0.558, 1.442), (0.6235, 0.028), (-0.050, 0.467)
LABELS = {"hmm": "MF-Hom-SGLD (gamma = 0.05)", "mean-field": "plain agents (KPP)",
          "sgd": "SGD (SGLD, eps = 1e-5)", "nesterov": "Nesterov (momentum 0.5)",
          "mass": "MaSS (kappa~ = 10)"}


def global_fraction(x, phi):
    """Fraction of agents that gradient descent takes to the global minimum."""
    for _ in range(4000):
        x = x - 2e-4 * phi.gradient(x)
    d = np.stack([np.linalg.norm(x - np.array(m), axis=1) for m in (GLOBAL, SHALLOW, MIDDLE)], axis=1)
    return float(np.mean(np.argmin(d, axis=1) == 0))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/sweep_muller_brown")
    ap.add_argument("--seeds", type=int, default=6, help="initialisations per method (default 6)")
    ap.add_argument("--workers", type=int, help="local Dask workers (default 2)")
    ap.add_argument("--scheduler", help="an existing Dask scheduler, tcp://HOST:PORT")
    args = ap.parse_args()
    out = Path(args.out)
    argv = ["sweep", str(CONFIG), "--command", "particles", "--seeds", str(args.seeds), "--zip",
            "--param", "particles.method=hmm,mean-field,sgd,nesterov,mass",
            "--param", "particles.dt=0.01,1e-5,1e-5,1e-5,1e-5",
            # the optimisers' keys (each method warns about, and ignores, the others' keys)
            "--set", "particles.eps=1e-5", "--set", "particles.momentum=0.5",
            "--set", "particles.kappa_tilde=10",
            "--out", str(out), "--quiet"]
    argv += ["--scheduler", args.scheduler] if args.scheduler else ["--workers", str(args.workers or 2)]
    if ddsolve_main(argv) != 0:
        raise SystemExit(f"ddsolve sweep failed; see {out / 'sweep.csv'}")
    with open(out / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    phi = MullerBrownPotential()
    results = {m: {"loss": [], "global": [], "wall": []} for m in LABELS}
    for row in rows:
        x = load_particles(out / row["dir"]).coordinates[-1]
        res = results[row["particles.method"]]
        res["loss"].append(float(np.mean(phi(x))))
        res["global"].append(global_fraction(x, phi))
        res["wall"].append(float(row["wall_time"]))
    levels = ", ".join(f"{name} {float(phi(np.array([m]))[0]):.2f}"
                       for name, m in (("global", GLOBAL), ("middle", MIDDLE), ("shallow (start)", SHALLOW)))
    print(f"{len(rows)} runs ({args.seeds} seeds per method), t = 2, 100 agents each; Phi at the minima: "
          f"{levels}")
    print(f"{'agents':28s} {'final loss: mean':>17s} {'std':>7s} {'min':>8s} {'max':>8s}"
          f" {'in global basin: mean':>22s} {'min':>5s} {'max':>5s} {'s/run':>6s}")
    for m, res in results.items():
        loss, glob = np.array(res["loss"]), np.array(res["global"])
        print(f"{LABELS[m]:28s} {loss.mean():17.2f} {loss.std(ddof=1):7.2f} {loss.min():8.2f} "
              f"{loss.max():8.2f} {glob.mean():22.2f} {glob.min():5.2f} {glob.max():5.2f} "
              f"{np.median(res['wall']):6.1f}")

    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, (m, res) in enumerate(results.items()):
        y = np.array(res["loss"])
        ax.scatter(np.full(y.size, i) + np.linspace(-0.15, 0.15, y.size), y, s=18, color=f"C{i}")
        ax.hlines(y.mean(), i - 0.3, i + 0.3, color="k", lw=1)
    ax.axhline(-146.70, color="grey", ls=":", lw=1, label="global minimum of Phi")
    ax.set_xticks(range(len(results)), [LABELS[m].replace(" (", "\n(") for m in results], fontsize=7)
    ax.set(ylabel="final loss: mean of Phi over the agents",
           title=f"Mueller-Brown agents, {args.seeds} initialisations each, t = 2")
    ax.legend(fontsize="small")
    fig.savefig(out / "sweep_muller_brown.png", dpi=110)
    print(f"figure: {out / 'sweep_muller_brown.png'}")
