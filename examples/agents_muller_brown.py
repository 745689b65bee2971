"""Interacting agents escaping a shallow minimum of the Mueller-Brown loss.

Runs agents_muller_brown.toml twice with ``ddsolve particles``: the multiscale
MF-Hom-SGLD agents (Tassopoulos 2023, §3.1.4: each agent's slow variable follows the Gibbs-smoothed
loss Phi^{beta,gamma} via an averaged fast Langevin chain) and, for comparison, the plain
Kantas-Parpas-Pavliotis agents (method = "mean-field", same Phi, coupling and temperature,
dt = 1e-5, same PDE time). Every final agent is quenched by gradient descent to the nearest
minimum; the script prints the fraction of agents in each basin and saves the agents over
the contours of Phi.

At this temperature both escape: 0.81 (HMM) and 0.80 (plain) of the 100 agents end in the
global basin. The HMM gets there with 200 macro steps of 0.01 (the slow variables see the
smoothed loss), the plain agents need 2e5 steps of 1e-5 (Phi is stiff): 1 s against 20 s
here. With gamma = 0.002 instead of 0.05 every HMM agent stays in the shallow basin
(tests/test_particles_hmm.py), so the escape comes from the smoothing.
"""
import argparse
from pathlib import Path

import numpy as np
import tomllib
from matplotlib.figure import Figure

from ddsolve.app.cli import main as ddsolve_main
from ddsolve.model.potentials import MullerBrownPotential
from particles.runner import run_particles
from particles.storage import load_particles

CONFIG = Path(__file__).with_name("agents_muller_brown.toml")
MINIMA = {"global (-0.56, 1.44)": (-0.558, 1.442), "shallow (0.62, 0.03)": (0.6235, 0.028),
          "middle (-0.05, 0.47)": (-0.050, 0.467)}


def basins(x, phi):
    for _ in range(4000):
        x = x - 2e-4 * phi.gradient(x)
    d = np.stack([np.linalg.norm(x - np.array(m), axis=1) for m in MINIMA.values()], axis=1)
    return np.bincount(np.argmin(d, axis=1), minlength=3) / len(x)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/agents_muller_brown")
    out = Path(ap.parse_args().out)
    phi = MullerBrownPotential()
    finals = {}
    print(f"{'agents':28s} " + " ".join(f"{k:>22s}" for k in MINIMA))
    # the multiscale agents: the config as it is
    if ddsolve_main(["particles", str(CONFIG), "--out", str(out / "hmm"), "--quiet", "--overwrite"]) != 0:
        raise SystemExit("ddsolve particles failed")
    # the plain agents: same model and initial law, [particles] without the HMM keys
    raw = tomllib.loads(CONFIG.read_text())
    raw["particles"] = {k: raw["particles"][k] for k in ("n", "t_final", "snapshots", "seed")}
    raw["particles"].update(method="mean-field", dt=1e-5)
    run_particles(raw, out / "plain", exists="overwrite")
    for label, where in (("MF-Hom-SGLD (gamma = 0.05)", "hmm"), ("plain agents (KPP)", "plain")):
        finals[label] = load_particles(out / where).coordinates[-1]
        frac = basins(finals[label], phi)
        print(f"{label:28s} " + " ".join(f"{f:22.2f}" for f in frac))

    gx, gy = np.meshgrid(np.linspace(-1.5, 1.2, 200), np.linspace(-0.5, 2.0, 200))
    v = phi(np.stack([gx, gy], axis=-1))
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    ax.contour(gx, gy, np.minimum(v, 50), levels=30, cmap="Greys", linewidths=0.6)
    for c, (label, x) in zip(("C0", "C3"), finals.items()):
        ax.scatter(x[:, 0], x[:, 1], s=8, color=c, label=f"{label}, t = 2")
    ax.plot(0.6235, 0.028, "k*", ms=12, label="start (shallow minimum)")
    ax.set(xlabel="x", ylabel="y", title="Mueller-Brown agents, 1/beta = 20")
    ax.legend(fontsize="small", loc="upper right")
    fig.savefig(out / "agents_muller_brown.png", dpi=110)
    print(f"figure: {out / 'agents_muller_brown.png'}")
