"""``ddsolve particles CONFIG.toml [--out DIR] [--set key=value ...] [--quiet] [--resume | --overwrite]``.

Registered with ddsolve through the entry-point group ``ddsolve.commands`` (see
``pyproject.toml``), so the core ``ddsolve`` package never imports this package. The
command owns the ``[particles]`` section (:mod:`particles.config`).
"""

from __future__ import annotations

import argparse

from ddsolve.app.builtin_commands import add_run_arguments, read_raw_config
from ddsolve.app.commands import Command

__all__ = ["ParticlesCommand"]


class ParticlesCommand(Command):
    """Run finite-N particle dynamics of the config's model (:mod:`particles.runner`)."""

    name = "particles"
    help = "run finite-N particle dynamics (SGD, Langevin, agents) from a TOML config with a [particles] section"
    sections = ("particles",)
    # particles.storage.PARTICLES_FILE, particles.runner.PARTICLES_FIGURE, ...: declared here,
    # where every command sees them, so that an --overwrite of any command removes them
    outputs = ("particles.h5", "particles.png", "diagnostics.csv", "diagnostics.png", "summary.json",
               "checkpoint.npz", "checkpoint.npz.tmp")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, "particles", "particles.n=2000")

    def run(self, args: argparse.Namespace) -> int:
        from particles.runner import run_particles

        raw = read_raw_config(args, "particles")
        result = run_particles(raw, progress=not args.quiet, exists=args.exists)
        if not args.quiet:
            s = result.summary
            final = s["final"]
            if s.get("resumed"):
                print(f"ddsolve: resumed at t={s['resumed']['t']:.6g} from the checkpoint in "
                      f"{result.out_dir}")
            extra = "".join(f", {k} {final[k]:.8g}" for k in ("risk", "loss", "energy") if k in final)
            print(f"ddsolve: {s['dynamics']['method']}: t={final['t']:.6g} reached in {s['steps']} "
                  f"steps ({s['wall_time']:.2f} s){extra}; output in {result.out_dir}")
        return 0

    def check_config(self, raw) -> bool:
        from ddsolve.app.config import resolve, resolve_model
        from particles.config import SGD_METHODS, check_resources
        from particles.runner import check_budget, resolve_particle_section

        part = resolve_particle_section(raw.get("particles"))
        if part["method"] in SGD_METHODS:
            resolve_model(raw.get("model", {}))
        else:
            resolve(raw, solver=False)
        if part["method"] in ("mean-field", "hmm", "sgd"):  # momentum methods convert t_final later
            check_budget(part)
        check_resources(raw)
        return True

    def describe(self) -> str:
        from particles.config import describe_particles

        return f"Particle runs (ddsolve particles):\n\n{describe_particles()}"
