r"""Mei-Montanari-Nguyen non-monotone activation at large finite beta (d = 320): how many
stationary states coexist, and which are stable.

``ddsolve steady`` on mmn_nonmonotone.toml with model.beta = 100 and 1000, 1000 radial cells.
Deflation starts from the [initial] law (kappa = 0.4), the Gibbs state of V, the soft
Jacobian modes and random restarts; the entropy on the radial measure r^(d-1) (d = 320)
repels mass from r = 0, so the point mass at w = 0 of the noiseless kappa = 0.1 limit has
no finite-beta counterpart. The script prints every state found with its risk and
stability, and plots their radial densities.
"""
import csv
from pathlib import Path

import numpy as np
import pde
from matplotlib.figure import Figure

from ddsolve.app.results import example_out, run_or_exit

CONFIG = Path(__file__).with_name("mmn_nonmonotone.toml")
BETAS = (100.0, 1000.0)


def main(argv=None):
    out = example_out(__doc__.split("\n\n")[0], "runs/steady_mmn_finite_beta", argv)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for k, beta in enumerate(BETAS):
        sub = out / f"beta_{beta:g}"
        run_or_exit("steady", CONFIG, "--out", sub, "--set", f"model.beta={beta}", "--guesses", "16")
        rows = list(csv.DictReader(open(sub / "states.csv")))
        print(f"beta = {beta:g}: {len(rows)} state(s)")
        for row in rows:
            print(f"  state {row['id']}: risk {float(row['risk']):.6f}, mean r {float(row['mean_r']):.4f}, "
                  f"stable {row['stable']} ({row['n_unstable']} unstable directions), residual "
                  f"{float(row['residual']):.1e}")
            storage = pde.FileStorage(sub / f"state_{row['id']}.h5", write_mode="readonly")
            field = storage[0]
            r = field.grid.axes_coords[0]
            ax.plot(r, np.asarray(field.data), color=f"C{k}",
                    label=f"beta = {beta:g}, state {row['id']} (risk {float(row['risk']):.3f})")
            storage.close()
    ax.set(xlabel="r = |w|", ylabel="density on the radial grid", yscale="log", ylim=(1e-12, None),
           title="MMN non-monotone, d = 320: stationary states at finite beta")
    ax.legend(fontsize=8)
    fig.savefig(out / "steady_mmn_finite_beta.png", dpi=120)
    print(f"figure: {out / 'steady_mmn_finite_beta.png'}")


if __name__ == "__main__":
    main()
