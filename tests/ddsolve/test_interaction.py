"""Interaction operators: dense, FFT and separable agree with each other to round-off
and with direct quadrature; Psi converges to the exact convolution."""

import numpy as np
import pytest
from scipy import integrate
from scipy.special import erf

from ddsolve import cartesian, radial
from ddsolve.grid.interaction import (
    ConvolutionInteraction,
    DenseInteraction,
    SeparableInteraction,
    make_interaction,
    quadrature_matrix,
)
from ddsolve.model.kernels import (
    AttractiveRepulsiveKernel,
    CosineKernel,
    ExpressionKernel,
    GaussianKernel,
    QuadraticKernel,
    make_kernel,
)
from tests.helpers import observed_orders

GRIDS = {
    "1d": lambda: cartesian([-2, 2], 37),
    "1d-periodic": lambda: cartesian([0, 2 * np.pi], 40, periodic=True),
    "2d": lambda: cartesian([[-1, 1], [-2, 1]], [9, 11]),
    "2d-mixed": lambda: cartesian([[0, 2 * np.pi], [-1, 1]], [12, 7], periodic=[True, False]),
}
KERNELS = {
    "quadratic": lambda: QuadraticKernel(1.3),
    "attractive-repulsive": lambda: AttractiveRepulsiveKernel(),
    "gaussian": lambda: GaussianKernel(-1.0, 0.5),
    "cosine": lambda: CosineKernel(0.7, 2 * np.pi),
}


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_dense_fft_separable_agree(grid, kernel):
    coords, ker = GRIDS[grid](), KERNELS[kernel]()
    rho = np.random.default_rng(1).uniform(0, 2, coords.shape)
    dense = DenseInteraction(ker, coords)
    fft = ConvolutionInteraction(ker, coords)
    ref = dense.apply(rho)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(fft.apply(rho), ref, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(dense.K, dense.K.T, rtol=0, atol=0)
    try:
        sep = make_interaction(ker, coords, "separable")
    except ValueError:
        return  # no separable form valid on these coordinates
    np.testing.assert_allclose(sep.apply(rho), ref, rtol=0, atol=1e-12 * scale)


def test_dense_entries_match_direct_quadrature():
    """K_ij = (1/h^2) int_{C_i} int_{C_j} U, checked with scipy.dblquad on a general
    (non translation-invariant) kernel."""
    coords = cartesian([-1, 1], 32)  # 3-point Gauss-Legendre: O(h^6) per entry
    ker = ExpressionKernel("exp(-(x - y)**2) * (1 + x*y)**2")
    K = DenseInteraction(ker, coords, quadrature=3).K
    e, h = coords.axes[0].edges, coords.axes[0].spacing
    for i, j in [(0, 0), (2, 25), (31, 1), (14, 14)]:
        val, _ = integrate.dblquad(lambda y, x: float(ker(np.array([x]), np.array([y]))),
                                   e[i], e[i + 1], e[j], e[j + 1], epsabs=1e-18, epsrel=1e-13)
        assert K[i, j] == pytest.approx(val / h**2, rel=1e-7)


def test_kink_kernel_diagonal_entries():
    """|x - y| has a kink on the diagonal: the cell average of |x-y| over C_i x C_i is
    exactly h/3; the default Gauss-Legendre rule is second-order accurate there."""
    coords = cartesian([0, 1], 50)
    h = coords.axes[0].spacing
    ker = make_kernel("abs(z)", 1)
    errs = []
    for q in (1, 2, 3):
        K = DenseInteraction(ker, coords, quadrature=q).K
        errs.append(abs(K[10, 10] - h / 3))
        # off-diagonal entries (smooth in each cell pair) are exact for |x-y| linear pieces
        assert K[10, 20] == pytest.approx(10 * h, rel=1e-12)
    assert errs[1] < 0.2 * h


def test_psi_converges_to_exact_gaussian_convolution():
    """W = -exp(-z^2/(2 s^2)) convolved with N(0, v): exact Gaussian; cell averages of
    Psi converge at second order (the density's cell averages are exact)."""
    s, v = 0.5, 0.3
    errs, hs = [], []
    for M in (40, 80, 160, 320):
        coords = cartesian([-4, 4], M)
        e, h = coords.axes[0].edges, coords.axes[0].spacing
        rho = np.diff(0.5 * (1 + erf(e / np.sqrt(2 * v)))) / h
        psi = make_interaction(GaussianKernel(-1.0, s), coords, "dense").apply(rho)
        # exact: -s/sqrt(s^2+v) exp(-x^2/(2(s^2+v))); its cell averages via erf
        w2 = s**2 + v
        exact = -s / np.sqrt(w2) * np.sqrt(np.pi * w2 / 2) * np.diff(erf(e / np.sqrt(2 * w2))) / h
        errs.append(np.abs(psi - exact).max())
        hs.append(h)
    assert np.all(observed_orders(hs, errs) >= 1.9), errs


def test_auto_method_choice_and_errors():
    c1 = cartesian([-1, 1], 300)
    assert isinstance(make_interaction(QuadraticKernel(), c1), SeparableInteraction)
    assert isinstance(make_interaction(GaussianKernel(), c1), ConvolutionInteraction)
    assert isinstance(make_interaction(GaussianKernel(), cartesian([-1, 1], 50)), DenseInteraction)
    assert make_interaction(make_kernel("zero", 1), c1) is None
    # quadratic kernel is not periodic: no separable form on a torus
    with pytest.raises(ValueError, match="separable"):
        make_interaction(QuadraticKernel(), cartesian([0, 1], 10, periodic=True), "separable")
    with pytest.raises(ValueError, match="translation-invariant"):
        ConvolutionInteraction(ExpressionKernel("x*y"), c1)
    with pytest.raises(ValueError, match="radial"):
        ConvolutionInteraction(GaussianKernel(), radial(3, 1.0, 10))
    with pytest.raises(ValueError, match="method"):
        make_interaction(GaussianKernel(), c1, "banana")
    with pytest.raises(ValueError, match="symmetric"):
        ExpressionKernel("x - y")


def test_interaction_energy_is_symmetric_quadratic_form():
    coords = cartesian([[-1, 1], [-1, 1]], [8, 6])
    op = make_interaction(GaussianKernel(0.7, 0.4), coords, "dense")
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=(2,) + coords.shape)
    # polarisation: E(a+b) - E(a) - E(b) = <a, U b> |C|
    cross = op.energy(a + b) - op.energy(a) - op.energy(b)
    assert cross == pytest.approx(np.sum(a * op.apply(b)) * coords.cell_volume, rel=1e-12)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kernel", ["attractive-repulsive", "gaussian", "quadratic"])
def test_toeplitz_gather_equals_pairwise_quadrature(grid, kernel):
    """The dense matrix of a convolution kernel, gathered from the FFT offsets, equals
    the cell-pair quadrature built independently."""
    coords, ker = GRIDS[grid](), KERNELS[kernel]()
    K = DenseInteraction(ker, coords).K
    Q = quadrature_matrix(ker, coords)
    np.testing.assert_allclose(K, Q, rtol=0, atol=1e-13 * np.abs(Q).max())


def test_callable_potential_and_kernel_match_named_ones():
    from ddsolve import GridModel, Model
    from ddsolve.model.potentials import make_potential

    coords = cartesian([-2, 2], 30)
    named = GridModel(Model(potential=make_potential("quadratic", 1, stiffness=2.0),
                            interaction=make_kernel("gaussian", 1, amplitude=-1.0, sigma=0.5)),
                      coords, interaction="dense")
    pot = make_potential(lambda x: x[..., 0] ** 2, 1)
    ker = make_kernel(lambda x, y: -np.exp(-np.sum((x - y) ** 2, axis=-1) / 0.5), 1)
    mine = GridModel(Model(potential=pot, interaction=ker), coords, interaction="dense")
    rho = np.random.default_rng(2).uniform(0, 1, 30)
    np.testing.assert_allclose(mine.psi(rho), named.psi(rho), rtol=1e-12, atol=1e-12)
