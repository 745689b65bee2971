"""Minimising-movement (Jordan–Kinderlehrer–Otto) schemes: the Lagrangian (quantile) step,
exact in the Wasserstein distance, on 1D and radial grids
(:mod:`~ddsolve.schemes.jko.lagrangian`), the finite-volume linearised JKO step on any
grid (:mod:`~ddsolve.schemes.jko.fv`), and the py-pde solver that drives them with
adaptive steps (:mod:`~ddsolve.schemes.jko.solver`). Importing this package registers
``scheme.name = "jko"``."""

from ddsolve.schemes.jko import steppers as _steppers  # noqa: F401 - registers ("jko", True)
