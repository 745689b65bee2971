"""Heavier convergence studies (``pytest -m slow``): every exact-solution case on four
grids, each successive observed order >= 1.9."""

import numpy as np
import pytest

from validation.convergence import CASES, grid_study


@pytest.mark.slow
@pytest.mark.parametrize("key", list(CASES))
def test_four_grid_study(key):
    case = CASES[key]
    cells = case.cells + (2 * case.cells[-1],)
    res = grid_study(case.name, case.run, cells)
    assert np.all(res.orders >= case.min_order), (res.errors, res.orders)
    assert res.errors[-1] < case.max_error / 3.5, res.errors
