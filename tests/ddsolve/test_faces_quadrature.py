"""Grid faces (the discrete gradient and its transpose) and the Gauss-Legendre source."""

import numpy as np
import pytest

from ddsolve.grid import cartesian
from ddsolve.grid.faces import Faces
from ddsolve.grid.quadrature import gauss_legendre, half_gauss_legendre


@pytest.mark.parametrize("coords, n_faces", [
    (cartesian([0.0, 1.0], 7), 6),
    (cartesian([0.0, 1.0], 7, periodic=True), 7),
    (cartesian([[0, 1], [0, 2]], [4, 5], periodic=[True, False]), 4 * 5 + 4 * 4),
])
def test_faces_adjoint_and_conservation(coords, n_faces):
    faces = Faces(coords)
    assert faces.left.size == n_faces
    rng = np.random.default_rng(1)
    phi, F = rng.normal(size=coords.size), rng.normal(size=n_faces)
    # G^T is the transpose of G, and G^T F sums to zero (mass is conserved exactly)
    assert np.dot(faces.difference(phi), F) == pytest.approx(np.dot(phi, faces.adjoint(F)), rel=1e-13)
    assert abs(faces.adjoint(F).sum()) < 1e-12
    # a linear phi has the constant difference of its slope across interior faces
    x = coords.cell_centers()[..., 0].ravel()
    g = faces.difference(3.0 * x)
    interior = np.abs(x[faces.right] - x[faces.left]) < 0.5
    np.testing.assert_allclose(g[interior & (faces.inv_h == 1 / coords.spacing[0])], 3.0)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 20])
def test_gauss_legendre_is_exact_to_degree_2n_minus_1(n):
    x, w = gauss_legendre(n)
    for k in range(2 * n):
        exact = 0.0 if k % 2 else 2.0 / (k + 1)
        assert np.dot(w, x**k) == pytest.approx(exact, abs=1e-13)
    assert not x.flags.writeable  # cached: callers cannot corrupt the shared rule
    x2, w2 = half_gauss_legendre(2 * n)
    assert np.all(np.diff(x2) < 0) and np.all(x2 > 0)
    assert 2 * w2.sum() == pytest.approx(2.0, abs=1e-14)
