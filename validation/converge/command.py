"""``ddsolve converge CONFIG.toml --param KEY=v1,v2,... [--command run|steady|particles]
[--quantity NAME ...] [--error auto|exact|difference] [--out DIR] [--set ...] [--quiet]``.

Registered through the ``ddsolve.commands`` entry points; the study is
:func:`validation.converge.study.converge`, its files :mod:`validation.converge.report`.
"""

from __future__ import annotations

import argparse

from ddsolve.app.builtin_commands import add_run_arguments, read_raw_config
from ddsolve.app.commands import Command

__all__ = ["ConvergeCommand"]


def final_numbers(study) -> dict:
    """For ``summary.json`` (and a sweep): the finest error and the last observed order of
    each quantity."""
    import math

    out = {}
    for r in study.rows:
        if r[study.key] == "richardson":
            continue
        q = r["quantity"]
        if math.isfinite(r["error"]):
            out[f"error_{q}"] = r["error"]
        if math.isfinite(r["order"]):
            out[f"order_{q}"] = r["order"]
    return out


class ConvergeCommand(Command):
    """Order tables of a config as one key is refined."""

    name = "converge"
    help = "convergence study: order tables as one config key is refined (--param grid.cells=100,200,400)"
    outputs = ("convergence.csv", "convergence.md", "convergence.png", "summary.json")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, "converge", "model.beta=2")
        parser.add_argument("--param", required=True, metavar="KEY=V1,V2,...",
                            help="the refined key and its values, coarse to fine, e.g. grid.cells=100,200,400 "
                                 "or scheme.dt=0.1,0.05,0.025")
        parser.add_argument("--command", dest="study_command", default="run", choices=("run", "steady", "particles"),
                            help="what each point runs (default run)")
        parser.add_argument("--quantity", action="append", default=None, metavar="NAME",
                            help="tabulate only this answer (density, free_energy, risk, mean_x, ...); repeatable")
        parser.add_argument("--error", default="auto", choices=("auto", "exact", "difference"),
                            help="error against the exact solution (auto: when the config has one) "
                                 "or successive differences")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from ddsolve import orders
        from ddsolve.app.config import parse_param

        from .report import write_study
        from .study import converge

        key, values = parse_param(args.param)
        raw = read_raw_config(args, "converge")
        section = raw.pop("converge", {}) or {}
        out = Path(section.get("out") or f"runs/converge/{Path(args.config).stem}")

        def progress(point):
            if not args.quiet:
                print(f"  {key} = {point.value}: done (h = {point.h:.4g})", flush=True)

        from ddsolve.app.lifecycle import RunRecord

        # no checkpoint: --resume starts the study again, like --overwrite
        exists = "overwrite" if args.exists == "resume" else args.exists
        record = RunRecord(out, "converge.out", raw, exists=exists, command="converge", param=args.param)
        with record.running(now=lambda: None):
            study = converge(raw, key, values, out, command=args.study_command, quantities=args.quantity,
                             error=args.error, progress=progress)
            paths = write_study(out, study, args.config)
        record.finish(final=final_numbers(study), error_mode=study.error_mode)
        if not args.quiet:
            print(orders.format_order_table(key, study.rows))
            for n in study.notes:
                print(f"ddsolve: note: {n}")
            print(f"ddsolve: order table in {paths['csv']} and {paths['md']}")
        return 0

    def check_config(self, raw) -> bool:
        from ddsolve.app.config import resolve

        resolve(raw, solver=False)  # the point command (--command) checks the rest per run
        return True
