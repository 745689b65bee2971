r"""Two-layer neural networks trained by SGD on Gaussian data: exact reduced models.

Network :math:`\hat y(x) = \frac1N\sum_i\sigma_*(x;\theta_i)` with
:math:`\sigma_*(x;\theta) = \sigma(\langle w,x\rangle)` (``trained = ["w"]``) or
:math:`a\,\sigma(\langle w,x\rangle)` (``trained = ["w", "a"]``), square loss, data from
the isotropic or anisotropic Gaussian laws of Mei, Montanari & Nguyen (PNAS 2018, §3;
:mod:`ddsolve.networks.data`). Then :math:`V(\theta) = -\mathbb{E}[y\sigma_*]`,
:math:`U = \mathbb{E}[\sigma_*\sigma_*']`, risk :math:`R(\rho) = \mathbb{E}y^2 + 2\int V\rho
+ \iint U\rho\rho` (written to ``diagnostics.csv`` as ``risk``), and for a law of
:math:`w` invariant under rotations (of each block) the dynamics closes exactly on the
block norms (:mod:`ddsolve.networks.reduction`):

* isotropic data, ``trained = ["w"]``: :math:`r = |w|`, radial grid of dimension ``dim``;
* isotropic data, ``trained = ["w", "a"]``: :math:`(r, a)`, radial axis × charge axis;
* anisotropic data: :math:`(r_1, r_2) = (|w_{1:s_0}|, |w_{s_0+1:d}|)`, two radial axes of
  dimensions ``[s0, dim - s0]``;
* teacher–student data (one teacher neuron :math:`y = a_*\sigma(\tau_*\langle e,x\rangle)`,
  :math:`x\sim N(0,I_d)`): :math:`(s, u) = (|w - \langle w,e\rangle e|, \langle w,e\rangle)`,
  a radial axis of dimension ``dim - 1`` and a signed axis ``u``
  (:class:`~ddsolve.networks.reduction.TeacherReduction`).

On the two Gaussian-mixture laws the classes are centred, so only the even part of
:math:`\sigma` matters: for sigmoid and tanh (a constant plus an odd function)
:math:`V\equiv0` and :math:`\bar u\equiv\sigma(0)^2`, and the dynamics is trivial; they are
meaningful with teacher data.

**Time.** Mei–Montanari–Nguyen run SGD with step :math:`s_k = \varepsilon\,\xi_{\rm MMN}(k\varepsilon)`
and find :math:`\partial_t\rho = 2\xi_{\rm MMN}\nabla\cdot(\rho\nabla\Psi)` at
:math:`t = k\varepsilon`. ddsolve's equation is :math:`\partial_t\rho =
\xi\nabla\cdot(\rho\nabla(\Psi + \beta^{-1}\log(\rho/m)))` (:mod:`ddsolve.model.schedule`), so
``xi`` is :math:`2\xi_{\rm MMN}`: the default ``xi = 2`` is MMN's constant schedule
:math:`\xi_{\rm MMN}\equiv1`, and PDE time is the number of SGD steps times
:math:`\varepsilon`. Noisy SGD at inverse temperature ``beta`` adds
:math:`\xi\beta^{-1}\Delta\rho`; its stationary states satisfy
:math:`\rho\propto m\,e^{-\beta\Psi[\rho]}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ddsolve.laws.initial import InitialKind, gaussian_log_cell_averages
from ddsolve.networks.activations import ACTIVATIONS, Activation, make_activation
from ddsolve.networks.data import DataLaw, GaussianMixtureData
from ddsolve.networks.reduction import (
    ANGLE_MODES,
    ReducedKernel,
    ReducedPotential,
    TeacherReduction,
    TwoLayerReduction,
)
from ddsolve.problems.base import BETA, Problem
from ddsolve.schema import (
    REQUIRED,
    XI,
    Choice,
    ConfigError,
    Integer,
    ListOf,
    OneOf,
    Param,
    Real,
    ScheduleSpec,
    config_key,
    when_equals,
)

__all__ = ["TwoLayer", "NetworkInitial", "NetworkSpec", "build_reduction", "build_network"]

_ACTIVATION_NAMES = tuple(ACTIVATIONS) + ("piecewise-linear",)
_piecewise = when_equals("activation", "piecewise-linear")


def _trains_a(params: Mapping[str, Any]) -> bool:
    return "a" in params["trained"]


def build_reduction(params: Mapping[str, Any]) -> TwoLayerReduction:
    """The :class:`~ddsolve.networks.reduction.TwoLayerReduction` of resolved ``[model]`` parameters."""
    with config_key("model.activation"):
        act = make_activation(params["activation"], params.get("breakpoints"), params.get("values"),
                              params.get("outer_slopes", (0.0, 0.0)))
    d = params["dim"]
    if params["data"] == "teacher":
        if _trains_a(params):
            raise ConfigError("model.trained", "teacher data with a trained second layer would need "
                                               "three coordinates (s, u, a); use trained = [\"w\"]")
        if d < 2:
            raise ConfigError("model.dim", f"teacher data needs dim >= 2, got {d}")
        return TeacherReduction(d, act, params["teacher_norm"], params["teacher_weight"],
                                angles=params["angles"], tol=params["kernel_tol"],
                                max_terms=params["kernel_max_terms"])
    if params["data"] == "isotropic":
        with config_key("model.delta"):
            data = GaussianMixtureData.isotropic(d, params["delta"])
    else:
        if not 1 <= params["s0"] < d:
            raise ConfigError("model.s0", f"must satisfy 1 <= s0 < dim = {d}, got {params['s0']}")
        with config_key("model.delta"):
            data = GaussianMixtureData.anisotropic(d, params["s0"], params["delta"])
    return TwoLayerReduction(data, act, second_layer=_trains_a(params), angles=params["angles"],
                             tol=params["kernel_tol"], max_terms=params["kernel_max_terms"])


@dataclass
class NetworkSpec:
    r"""The finite network and data law that a two-layer reduced model describes: what
    the particle SGD (:mod:`particles.sgd`) trains, sample by sample.

    Attributes
    ----------
    data : DataLaw
        Sampler of ``(x, y)``; for teacher data a :class:`~ddsolve.networks.data.TeacherData`
        whose teacher direction is :math:`e_1`.
    activation : Activation
    train_a : bool
        Whether the output weights :math:`a_i` are trained.
    kappa : float
        Initialisation scale, :math:`w\sim N(0,\kappa^2/d\,I_d)`.
    """

    data: DataLaw
    activation: Activation
    train_a: bool
    kappa: float


def build_network(params: Mapping[str, Any]) -> NetworkSpec:
    """The :class:`NetworkSpec` of resolved ``[model]`` parameters (same data law,
    activation and trained parameters as :func:`build_reduction`)."""
    reduction = build_reduction(params)
    if isinstance(reduction, TeacherReduction):
        data = reduction.teacher_data()
    else:
        data = reduction.data
    return NetworkSpec(data, reduction.activation, _trains_a(params), params["kappa"])


MAX_KERNEL_TERMS = 10_000
"""Most series terms of a two-coordinate kernel (its Gram matrix has terms^2 entries)."""


class _Trained(ListOf):
    """``["w"]`` or ``["w", "a"]``."""

    def __init__(self):
        super().__init__(Choice(("w", "a")), 1, 2)

    def check(self, value, key):
        out = super().check(value, key)
        if "w" not in out or len(set(out)) != len(out):
            raise self.fail(value, key)
        return sorted(out, key=("w", "a").index)

    def describe(self):
        return '["w"] or ["w", "a"]'


class NetworkInitial(InitialKind):
    r"""The initialisation of the seeds: :math:`w\sim N(0,\kappa^2/d\,I_d)`, so each block
    radius is :math:`r_b = (\kappa/\sqrt d)\,\chi_{n_b}` (exactly, on the grid), and the
    output weight :math:`a\sim N(a_{\rm mean}, a_{\rm std}^2)` when it is trained."""

    name = "network"
    doc = ("w ~ N(0, kappa^2/d I_d) with kappa from [model] (r = kappa chi_d / sqrt(d), per "
           "block for anisotropic data; s = kappa chi_(d-1) / sqrt(d) and u ~ N(0, kappa^2/d) "
           "for teacher data); a ~ N(a_mean, a_std^2) on the charge axis")
    params = (
        Param("a_mean", Real(), 1.0, "mean of the initial output weights a (trained = [\"w\", \"a\"])"),
        Param("a_std", Real(low=0, low_open=True), 0.1, "standard deviation of the initial a"),
    )
    main_key = "kind"
    is_law = True

    def log_density(self, params, ctx):
        mp = ctx.model_params
        if "kappa" not in mp or "dim" not in mp:
            raise ConfigError("initial.kind", "the 'network' initial law belongs to the two-layer problem")
        std = mp["kappa"] / math.sqrt(mp["dim"])
        coords = ctx.coords
        teacher = mp.get("data") == "teacher"  # the second axis is u = <w, e> ~ N(0, std^2)
        means = [0.0 if a.radial_dim is not None or teacher else params["a_mean"] for a in coords.axes]
        stds = [std if a.radial_dim is not None or teacher else params["a_std"] for a in coords.axes]
        return gaussian_log_cell_averages(coords, means, stds)


class TwoLayer(Problem):
    """Two-layer networks on MMN's Gaussian data, exact reduced PDE."""

    name = "two-layer"
    doc = ("Two-layer network sigma_*(x; theta) = sigma(<w, x>) (or a sigma(<w, x>) with "
           "trained = [\"w\", \"a\"]) trained by SGD on the Gaussian data of Mei, Montanari & "
           "Nguyen (2018): isotropic (y = +-1, x ~ N(0, (1 + y delta)^2 I_d)) or anisotropic "
           "(covariance (1 +- delta)^2 on the first s0 coordinates), or teacher-student "
           "data (one teacher neuron, x ~ N(0, I_d)). Exact reduced PDE on r = |w| (grid: "
           "radial, dim = d; with a charge axis for a), on (r1, r2) (grid: radial, dim = "
           "[s0, d - s0]) or, for a teacher, on (s, u) = (|w - <w,e> e|, <w, e>) (grid: "
           "radial, dim = d - 1, plus charge_bounds for u); the grid's coordinates and dim "
           "default from the model. Kernel by its Mehler-Hermite series with a rigorous truncation bound "
           "(closed form for ReLU). xi = 2 xi_MMN: the default 2 is MMN's constant "
           "schedule, so t = SGD steps x eps. diagnostics.csv has the risk and the "
           "dissipation int rho |grad mu|^2 (0 at stationary states).")
    params = (
        Param("beta", BETA, math.inf,
              "inverse temperature of noisy SGD (inf: plain SGD)"),
        Param("xi", OneOf((XI, ScheduleSpec())), 2.0,
              "PDE speed xi(t) = 2 xi_MMN(t) (SGD step s_k = eps xi(k eps) / 2); 2 is MMN's "
              "constant schedule"),
        Param("data", Choice(("isotropic", "anisotropic", "teacher")), "isotropic",
              "isotropic or anisotropic Gaussians (MMN 2018, Sec. 3), or a one-neuron teacher "
              "y = teacher_weight sigma(teacher_norm <e, x>) with x ~ N(0, I_d)"),
        Param("dim", Integer(low=1), REQUIRED, "input dimension d"),
        Param("s0", Integer(low=1), REQUIRED, "number of informative coordinates (1 <= s0 < dim)",
              when=when_equals("data", "anisotropic")),
        Param("delta", Real(0.0, 1.0, low_open=True, high_open=True), 0.5,
              "class separation Delta in (0, 1)", when=when_equals("data", "isotropic", "anisotropic")),
        Param("teacher_norm", Real(low=0, low_open=True), 1.0, "norm |w*| of the teacher neuron",
              when=when_equals("data", "teacher")),
        Param("teacher_weight", Real(), 1.0, "output weight a* of the teacher neuron",
              when=when_equals("data", "teacher")),
        Param("activation", Choice(_ACTIVATION_NAMES), "mmn-ramp",
              "sigma: relu, mmn-ramp (-2.5 below 0.5, 7.5 above 1.5), mmn-nonmonotone (-2.5, "
              "-4 at 0.5, 7.5 from 1.5), sigmoid, sigmoid2 (1/(1+e^-2t)), tanh, piecewise-linear"),
        Param("breakpoints", ListOf(Real()), REQUIRED, "increasing breakpoints b_j", when=_piecewise),
        Param("values", ListOf(Real()), REQUIRED, "sigma(b_j), linear in between", when=_piecewise),
        Param("outer_slopes", ListOf(Real(), 2, 2), [0.0, 0.0],
              "slopes below the first and above the last breakpoint", when=_piecewise),
        Param("trained", _Trained(), ["w"], "trained parameters: [\"w\"] or [\"w\", \"a\"]"),
        Param("kappa", Real(0.0, 1e3, low_open=True), 0.4,
              "initialisation scale: w ~ N(0, kappa^2/d I_d) ([initial] kind = \"network\")"),
        Param("angles", Choice(ANGLE_MODES), "exact",
              "exact angle averages (every d), or their large-d limit (orthogonal neurons)"),
        Param("kernel_tol", Real(low=0, low_open=True), 1e-10,
              "relative truncation bound of the kernel's Hermite series"),
        Param("kernel_max_terms", Integer(1, MAX_KERNEL_TERMS), 4000,
              "largest number of series terms (two-coordinate models; a warning reports the "
              "bound reached if kernel_tol is not met)"),
    )
    coordinates = ("radial",)
    default_initial = "network"

    def grid_defaults(self, params):
        d = params["dim"]
        if params["data"] == "teacher":
            return {"coordinates": "radial", "dim": [max(d - 1, 1)], "charge_name": "u"}
        if params["data"] == "isotropic":
            return {"coordinates": "radial", "dim": [d], **({"charge_name": "a"} if _trains_a(params) else {})}
        if not 1 <= params["s0"] < d:
            raise ConfigError("model.s0", f"must satisfy 1 <= s0 < dim = {d}, got {params['s0']}")
        return {"coordinates": "radial", "dim": [params["s0"], d - params["s0"]]}

    def memory_demands(self, params, ndim):
        if ndim < 2:
            return []
        terms = int(params["kernel_max_terms"])
        return [("model.kernel_max_terms", 8.0 * terms**2, f"the Gram matrix of up to {terms} kernel terms")]

    def build_model(self, params, coords):
        reduction = build_reduction(params)
        expected = reduction.radial_dims
        got = coords.radial_dims
        radial_got = tuple(x for x in got if x is not None)
        radial_expected = tuple(x for x in expected if x is not None)
        if radial_got != radial_expected:
            raise ConfigError("grid.dim", f"the two-layer problem with these parameters lives on "
                                          f"radial dimension(s) {list(radial_expected)}, the grid has "
                                          f"{list(radial_got)} (leave grid.dim out to use the model's)")
        if got != expected:
            if isinstance(reduction, TeacherReduction):
                raise ConfigError("grid.charge_bounds", "teacher data needs a second axis for u = <w, e>: "
                                                        "give grid.charge_bounds = [umin, umax] and charge_cells")
            if reduction.second_layer:
                raise ConfigError("grid.charge_bounds", "trained = [\"w\", \"a\"] needs a charge axis "
                                                        "for a: give grid.charge_bounds and charge_cells")
            raise ConfigError("grid.charge_bounds", "a charge axis needs trained = [\"w\", \"a\"] "
                                                    "or data = \"teacher\"")
        model = self.make_model(params, coords, potential=ReducedPotential(reduction),
                                interaction=ReducedKernel(reduction),
                                risk_offset=reduction.risk_offset)
        model.info["two_layer"] = reduction.report
        return model

    def initial_kinds(self):
        return {"network": NetworkInitial()}

    def extra_diagnostics(self, params, grid_model, rho):
        return {"dissipation": grid_model.dissipation(rho)}
