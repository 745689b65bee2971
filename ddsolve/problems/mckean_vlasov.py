r"""McKean–Vlasov problems: Fokker–Planck, Curie–Weiss, Kuramoto, aggregation, custom.

All are instances of

.. math:: \partial_t\rho = \xi(t)\,\nabla\cdot\big(\rho\,\nabla(V + U*\rho + \beta^{-1}\log\rho)\big)

with a choice of external potential :math:`V` and interaction :math:`U`. The named
potentials are shared (``potential = "quadratic" | "double-well" | "muller-brown" |
"zero"`` with their own parameters, or an expression in the axis names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ddsolve.grid.coordinates import Coordinates
from ddsolve.model.kernels import (
    KERNELS,
    AttractiveRepulsiveKernel,
    ConvolutionExpressionKernel,
    CosineKernel,
    GaussianKernel,
    Kernel,
    QuadraticKernel,
    make_kernel,
)
from ddsolve.model.potentials import POTENTIALS, ExpressionPotential, Potential, make_potential
from ddsolve.problems.base import MAX_STRENGTH, Problem
from ddsolve.schema import (
    REQUIRED,
    ConfigError,
    Expression,
    Fixed,
    Numeric,
    Param,
    Real,
    config_key,
    when_equals,
)

__all__ = [
    "potential_params",
    "build_potential",
    "FokkerPlanck",
    "CurieWeiss",
    "Kuramoto",
    "Aggregation",
    "Custom",
    "BUILTIN_PROBLEMS",
]

_POTENTIAL_DOC = (
    "external potential V: a name (zero, quadratic, double-well, muller-brown) or an "
    "expression in the axis names (x; x, y; r on radial grids; c on a charge axis)"
)


def potential_params(default: str) -> tuple[Param, ...]:
    """The parameters of the shared external potential, with default ``default``."""
    return (
        Param("potential", Expression("a potential name or an expression"), default, _POTENTIAL_DOC),
        Param("stiffness", Numeric(max_rank=2), 1.0,
              "A in V = (x - c)^T A (x - c) / 2: a number or a symmetric matrix",
              when=when_equals("potential", "quadratic")),
        Param("center", Numeric(max_rank=1), 0.0, "c in the quadratic potential",
              when=when_equals("potential", "quadratic")),
        Param("depth", Real(), 1.0, "a in V = a sum_k (x_k^4/4 - x_k^2/2)",
              when=when_equals("potential", "double-well")),
        Param("scale", Real(), 1.0, "energy scale s of the Mueller-Brown potential (2D)",
              when=when_equals("potential", "muller-brown")),
    )


def _check_shape(value: Any, key: str, ndim: int, allowed: tuple[tuple[int, ...], ...]) -> None:
    shape = np.shape(value)
    if shape not in allowed:
        raise ConfigError(key, f"has shape {list(shape)}, expected a number or shape "
                               f"{' or '.join(str(list(s)) for s in allowed if s)} on a {ndim}D grid")


def build_potential(params: Mapping[str, Any], coords: Coordinates) -> Potential:
    """The external potential described by the shared potential parameters."""
    name, n = params["potential"], coords.ndim
    kwargs: dict[str, Any] = {}
    if name == "quadratic":
        _check_shape(params["stiffness"], "model.stiffness", n, ((), (n, n)))
        _check_shape(params["center"], "model.center", n, ((), (n,)))
        kwargs = {"stiffness": params["stiffness"], "center": params["center"]}
    elif name == "double-well":
        kwargs = {"depth": params["depth"]}
    elif name == "muller-brown":
        kwargs = {"scale": params["scale"]}
    key = "model.stiffness" if name == "quadratic" else "model.potential"
    with config_key(key):
        return make_potential(name, n, names=coords.names, **kwargs)


class FokkerPlanck(Problem):
    """Linear Fokker–Planck equation, no interaction."""

    name = "fokker-planck"
    doc = ("Linear Fokker-Planck equation d_t rho = xi div(rho grad(V + log(rho/m)/beta)) "
           "with U = 0 (Jordan, Kinderlehrer & Otto 1998). Its stationary state is the Gibbs "
           "density m exp(-beta V)/Z. On radial grids V is a function of r and m = r^(d-1).")
    params = potential_params("quadratic")
    coordinates = ("cartesian", "radial")

    def build_model(self, params, coords):
        return self.make_model(params, coords, potential=build_potential(params, coords))


class CurieWeiss(Problem):
    """Desai–Zwanzig / Curie–Weiss mean-field model."""

    name = "curie-weiss"
    doc = ("Curie-Weiss (Desai-Zwanzig) model: quadratic attraction U(x, y) = theta |x - y|^2 / 2 "
           "in an external potential, by default the double well; for small temperatures the "
           "symmetric state loses stability (Dawson 1983; Desai & Zwanzig 1978).")
    params = potential_params("double-well") + (
        Param("theta", Real(-MAX_STRENGTH, MAX_STRENGTH), 1.0, "interaction strength theta (> 0 attracts)"),
    )

    def build_model(self, params, coords):
        return self.make_model(params, coords, potential=build_potential(params, coords),
                               interaction=QuadraticKernel(params["theta"]))


class Kuramoto(Problem):
    """Noisy Kuramoto model on a torus."""

    name = "kuramoto"
    doc = ("Noisy Kuramoto model on a periodic grid: U(x, y) = kappa W(x - y) with "
           "W(z) = -sum_k cos(2 pi z_k / L), L the period of the domain (Carrillo, Gvalani, "
           "Pavliotis & Schlichting, ARMA 2020). With V = 0 in 1D the uniform state loses "
           "stability at kappa beta = 2, for any L. Requires grid.periodic = true.")
    params = potential_params("zero") + (
        Param("kappa", Real(-MAX_STRENGTH, MAX_STRENGTH), 1.0, "coupling strength kappa (> 0 synchronises)"),
    )

    def build_model(self, params, coords):
        if not all(coords.periodic):
            raise ConfigError("grid.periodic",
                              "the kuramoto problem needs a periodic grid on every axis "
                              "(set grid.periodic = true)")
        lengths = coords.lengths
        if not np.allclose(lengths, lengths[0]):
            raise ConfigError("grid.bounds",
                              f"the kuramoto problem needs equal periods on all axes, got {lengths.tolist()}")
        kernel = CosineKernel(params["kappa"], length=float(lengths[0]))
        return self.make_model(params, coords, potential=build_potential(params, coords),
                               interaction=kernel)

    def extra_diagnostics(self, params, grid_model, rho):
        r"""Order parameter per axis, :math:`r = |\int e^{2\pi i x/L}\rho\,dx|`
        (0 for the uniform state, 1 for a point mass): columns ``order_<axis>``."""
        coords = grid_model.coords
        x = coords.cell_centers()
        out = {}
        for k, (name, L) in enumerate(zip(coords.names, coords.lengths)):
            phase = np.exp(2j * np.pi * x[..., k] / L)
            out[f"order_{name}"] = float(abs(np.sum(rho * phase)) * coords.cell_volume
                                         / grid_model.mass(rho))
        return out


class Aggregation(Problem):
    """Aggregation equation (no diffusion)."""

    name = "aggregation"
    doc = ("Aggregation equation d_t rho = xi div(rho grad(V + W * rho)) without diffusion "
           "(beta = inf is forced). W is attractive-repulsive |z|^a/a - |z|^b/b (default "
           "|z|^2/2 - |z|, whose 1D steady state is uniform on an interval of length 2; "
           "Carrillo, Chertock & Huang 2015), gaussian A exp(-|z|^2/(2 sigma^2)), or an "
           "even expression in z (z1, z2 in 2D).")
    params = (
        Param("beta", Fixed(math.inf), math.inf, "no diffusion: beta = inf is forced"),
    ) + potential_params("zero") + (
        Param("interaction", Expression("a kernel name or an expression in z (z1, z2 in 2D)"), "attractive-repulsive",
              "W: attractive-repulsive, gaussian, or an even expression in z"),
        Param("a", Real(low=0, low_open=True), 2.0, "attraction exponent a (a > b)",
              when=when_equals("interaction", "attractive-repulsive")),
        Param("b", Real(low=0, low_open=True), 1.0, "repulsion exponent b (0 < b < a)",
              when=when_equals("interaction", "attractive-repulsive")),
        Param("amplitude", Real(), -1.0, "A of the Gaussian kernel (< 0 attracts)",
              when=when_equals("interaction", "gaussian")),
        Param("sigma", Real(low=0, low_open=True), 1.0, "width sigma of the Gaussian kernel",
              when=when_equals("interaction", "gaussian")),
    )

    def _kernel(self, params: Mapping[str, Any], ndim: int) -> Kernel:
        name = params["interaction"]
        if name == "attractive-repulsive":
            with config_key("model.a"):
                return AttractiveRepulsiveKernel(params["a"], params["b"])
        if name == "gaussian":
            return GaussianKernel(params["amplitude"], params["sigma"])
        with config_key("model.interaction"):
            return ConvolutionExpressionKernel(name, ndim)

    def build_model(self, params, coords):
        return self.make_model(params, coords, potential=build_potential(params, coords),
                               interaction=self._kernel(params, coords.ndim))


class Custom(Problem):
    """Potential and interaction given as expressions."""

    name = "custom"
    doc = ("Any McKean-Vlasov model with V and U written as expressions. V is in the axis "
           "names (x; x, y; r on radial grids). U is either U(x, y) in x, y (x1, x2, y1, y2 in "
           "2D) or a convolution W(z) in z (z1, z2); on radial grids x and y are the two "
           "radii, so U must already be the rotation-averaged kernel.")
    params = (
        Param("potential", Expression("an expression in the axis names"), "0", "external potential V"),
        Param("interaction", Expression("an expression in x, y or in z"), REQUIRED, "interaction U(x, y) or W(z)"),
    )
    coordinates = ("cartesian", "radial")

    def build_model(self, params, coords):
        for key, names in (("potential", POTENTIALS), ("interaction", KERNELS)):
            if params[key] in names:
                raise ConfigError(f"model.{key}", f"the custom problem takes an expression, not "
                                                  f"the named {key} {params[key]!r}")
        with config_key("model.potential"):
            potential = ExpressionPotential(params["potential"], coords.ndim, names=coords.names)
        with config_key("model.interaction"):
            interaction = make_kernel(params["interaction"], coords.ndim)
        return self.make_model(params, coords, potential=potential, interaction=interaction)


BUILTIN_PROBLEMS: tuple[type[Problem], ...] = (FokkerPlanck, CurieWeiss, Kuramoto, Aggregation, Custom)
