"""validation.convergence: the observed-order and L1 helpers the convergence studies use."""

import numpy as np

from ddsolve import cartesian
from validation.convergence import l1_distance, observed_orders


def test_observed_orders_recover_a_known_rate():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = 3.0 * h**2 * (1 + 0.01 * h)
    orders = observed_orders(h, errors)
    np.testing.assert_allclose(orders, 2.0, atol=2e-3)


def test_l1_distance_is_a_cell_sum():
    coords = cartesian([0.0, 1.5], 3)  # cells of width 0.5
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0])
    assert l1_distance(coords, a, b) == 0.5 * (0.5 + 0 + 1.0)
