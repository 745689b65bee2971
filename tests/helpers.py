"""Shared helpers for the numerics tests (re-exported from validation.convergence)."""

from validation.convergence import l1_distance as l1
from validation.convergence import observed_orders

__all__ = ["l1", "observed_orders"]
