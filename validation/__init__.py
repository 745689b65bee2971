"""Comparison of particle systems with PDE solutions (N-scaling, grid and time-step
convergence studies). Planned with the particles issue; nothing is implemented yet."""
