"""Shared helpers for the numerics tests (re-exported from validation.convergence) and the
small configs several test modules run."""

from validation.convergence import l1_distance as l1
from validation.convergence import observed_orders

__all__ = ["l1", "observed_orders", "OU_CONFIG", "write_config", "start_command", "wait_until_locked"]

OU_CONFIG = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 1.0
[grid]
bounds = [-6.0, 6.0]
cells = 60
[initial]
kind = "gaussian"
mean = 1.0
std = 0.5
[run]
t_final = 0.5
save_every = 0.5
"""
"""1D Ornstein-Uhlenbeck from N(1, 0.5^2) to t = 0.5: exact solution known, runs in < 1 s."""


def write_config(directory, text: str = OU_CONFIG, name: str = "config.toml"):
    """Write ``text`` to ``directory / name`` and return the path."""
    path = directory / name
    path.write_text(text)
    return path


def start_command(command: str, config, out, *extra: str):
    """``python -m ddsolve COMMAND CONFIG --out OUT --quiet EXTRA...`` as a subprocess (CI=true:
    no progress bar), for the kill and signal tests."""
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "ddsolve", command, str(config), "--out", str(out),
                             "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "CI": "true"})


def wait_until_locked(out, proc, also: str | None = None, timeout: float = 60.0) -> None:
    """Until ``proc`` holds the lock on the directory ``out`` (it is past its imports) and,
    if given, the file ``also`` exists there."""
    import json
    import time
    from pathlib import Path

    out = Path(out)
    end = time.monotonic() + timeout
    while True:
        try:
            held = json.loads((out / ".ddsolve.lock").read_text() or "{}").get("pid") == proc.pid
        except (OSError, ValueError):
            held = False
        if held and (also is None or (out / also).exists()):
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.01)
