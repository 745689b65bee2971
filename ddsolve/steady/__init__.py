"""Stationary states of the distributional dynamics: self-consistency Newton, deflation,
continuation, stability, and the noiseless limit (``ddsolve steady``)."""
