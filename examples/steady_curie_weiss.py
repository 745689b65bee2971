r"""Curie-Weiss double well: the bifurcation diagram in beta for theta = 1 and theta = 0.5,
from ``ddsolve steady --continue model.beta=0.5:4`` on curie_weiss_double_well.toml.

The symmetric state loses stability at a pitchfork; the two ordered branches switched
onto there are stable and have the lower free energy. For theta = 1 the pitchfork is at
beta_c = (Gamma(1/4) / (2 Gamma(3/4)))^2 = 2.18844 (where V + theta x^2/2 = x^4/4), which
the script prints next to the located value and its bracket.
"""
import csv
from pathlib import Path

from matplotlib.figure import Figure
from scipy.special import gamma

from ddsolve.app.results import example_out, run_or_exit

CONFIG = Path(__file__).with_name("curie_weiss_double_well.toml")
THETAS = (1.0, 0.5)


def main(argv=None):
    out = example_out(__doc__.split("\n\n")[0], "runs/steady_curie_weiss", argv)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for k, theta in enumerate(THETAS):
        sub = out / f"theta_{theta:g}"
        run_or_exit("steady", CONFIG, "--out", sub, "--continue", "model.beta=0.5:4.0",
                    "--set", f"model.theta={theta}")
        rows = list(csv.DictReader(open(sub / "branches.csv")))
        for b in sorted({r["branch"] for r in rows}):
            pts = [r for r in rows if r["branch"] == b]
            for stable, ls in (("true", "-"), ("false", "--")):
                seg = [r if r["stable"] == stable else None for r in pts]
                xs = [float(r["model.beta"]) if r else float("nan") for r in seg]
                ys = [float(r["mean_x"]) if r else float("nan") for r in seg]
                ax.plot(xs, ys, ls, color=f"C{k}", label=f"theta = {theta:g}" if b == "0" and stable == "true" else None)
        for sp in csv.DictReader(open(sub / "special_points.csv")):
            ax.plot(float(sp["model.beta"]), 0.0, "ks", mfc="none")
            print(f"theta = {theta:g}: {sp['description']}")
    print(f"exact pitchfork for theta = 1: beta_c = {(gamma(0.25) / (2 * gamma(0.75))) ** 2:.6f}")
    ax.set(xlabel="beta", ylabel="magnetisation  m = mean x",
           title="Curie-Weiss double well (solid: stable, dashed: unstable)")
    ax.legend()
    fig.savefig(out / "steady_curie_weiss.png", dpi=120)
    print(f"figure: {out / 'steady_curie_weiss.png'}")


if __name__ == "__main__":
    main()
