"""Finite-N particle dynamics that validate the continuum solution of :mod:`ddsolve`.

Planned (issue "particles: fast finite-N dynamics"): mean-field particle systems of any
``ddsolve.Model`` (``Model.drift`` already gives :math:`-\\nabla\\Psi[\\rho_N]` at the
particles), SGD / noisy SGD on sampled data, interacting agents, HMM multiscale and
momentum variants. Nothing is implemented here yet.
"""
