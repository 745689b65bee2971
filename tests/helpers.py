"""Shared helpers for the numerics tests (re-exported from validation.convergence) and the
small configs several test modules run."""

from validation.convergence import l1_distance as l1
from validation.convergence import observed_orders

__all__ = ["l1", "observed_orders", "OU_CONFIG", "write_config"]

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
