"""Comparison of particle systems with PDE solutions.

Implemented: :mod:`validation.convergence`, the grid- and time-step convergence studies of
the finite-volume solver against exact solutions. The particles-vs-PDE comparisons
(N-scaling, Wasserstein distances between particle snapshots and densities, Dask sweeps)
belong to the validation issue and are not written yet; the pieces they will use exist:
``particles.h5`` holds snapshots in the PDE's coordinates at PDE times
(:func:`particles.storage.load_particles`) next to the PDE's ``density.h5``.
"""
