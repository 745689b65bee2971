"""Particle systems against PDE solutions, convergence studies and sweeps.

- :mod:`validation.metrics`: exact 1D/radial Wasserstein distances, KS, circle and 2D
  transport through POT, the sampling floor, conservative restriction between grids;
- :mod:`validation.validate`: ``ddsolve validate``, particles vs PDE reports;
- :mod:`validation.converge`: ``ddsolve converge``, order tables of any config;
- :mod:`validation.sweep`: ``ddsolve sweep``, studies on dask.distributed;
- :mod:`validation.convergence`: the exact-solution grid studies of the FV core
  (``python -m validation.convergence``).

The commands register through the ``ddsolve.commands`` entry points; ``ddsolve`` never
imports this package.
"""
