"""Stationary states of the distributional dynamics: self-consistency Newton, deflation,
continuation, stability, and the noiseless limit (``ddsolve steady``)."""

from ddsolve.steady.continuation import BetaFamily, RebuildFamily, continue_states
from ddsolve.steady.deflation import find_states
from ddsolve.steady.selfconsistency import NewtonFailure, SelfConsistency, SteadyState, gibbs_residual, newton
from ddsolve.steady.stability import decay_rates, stability

__all__ = ["SelfConsistency", "SteadyState", "NewtonFailure", "newton", "gibbs_residual", "find_states",
           "continue_states", "BetaFamily", "RebuildFamily", "stability", "decay_rates"]
