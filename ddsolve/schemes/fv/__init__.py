"""Finite-volume schemes (Carrillo–Chertock–Huang 2015): the compiled flux kernels, the
py-pde PDE class, the explicit SSP Runge–Kutta solver and the implicit Newton solver."""
