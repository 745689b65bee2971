"""ddsolve.orders: observed orders, Richardson values and power-law fits on synthetic
sequences with known answers."""

import math

import numpy as np
import pytest

from ddsolve.orders import markdown_order_table, observed_orders, order_table, power_fit, richardson


def test_observed_orders_recover_the_order_of_an_error_sequence():
    h = 0.2 / 2.0 ** np.arange(5)
    e = 0.7 * h**1.5 * (1 + 0.3 * h)
    p = observed_orders(h, e)
    assert np.all(np.abs(p - 1.5) < 0.05) and abs(p[-1] - 1.5) < 0.01
    assert abs(p[-1] - 1.5) < abs(p[0] - 1.5)  # the o(h^p) term fades


def test_self_convergence_recovers_order_and_limit():
    # q_h = q + C h^2 + D h^3: successive differences give order -> 2, Richardson -> q
    h = [0.1, 0.05, 0.025, 0.0125]
    q = [1.0 + 3 * x**2 + 5 * x**3 for x in h]
    rows = order_table("grid.cells", [10, 20, 40, 80], h, [{"q": v} for v in q])
    orders = [r["order"] for r in rows if r["grid.cells"] != "richardson" and math.isfinite(r["order"])]
    assert len(orders) == 2 and abs(orders[-1] - 2) < 0.1
    rich = next(r for r in rows if r["grid.cells"] == "richardson")
    assert abs(rich["value"] - 1.0) < abs(q[-1] - 1.0) / 10
    assert richardson(q[-2], q[-1], 2.0, 2.0) == pytest.approx(1.0, abs=2e-5)
    text = markdown_order_table("grid.cells", rows)
    assert "successive differences" in text and "| 80 |" in text


def test_exact_errors_and_given_errors_are_used_as_such():
    h = [0.1, 0.05]
    rows = order_table("scheme.dt", [0.1, 0.05], h, [{"m": 1.1}, {"m": 1.025}], exact={"m": 1.0, "L1": 0.0},
                       errors={"L1": [4e-2, 1e-2]})
    m = [r for r in rows if r["quantity"] == "m"]
    assert [r["error"] for r in m] == pytest.approx([0.1, 0.025])
    assert m[1]["order"] == pytest.approx(2.0)
    L1 = [r for r in rows if r["quantity"] == "L1"]
    assert L1[1]["order"] == pytest.approx(2.0) and L1[0]["error_kind"] == "exact"


def test_power_fit_slope_and_interval_coverage():
    rng = np.random.default_rng(0)
    x = np.array([100, 200, 400, 800, 1600.0])
    fit = power_fit(x, 2 * x**-1.0)
    assert fit.slope == pytest.approx(-1.0) and math.exp(fit.intercept) == pytest.approx(2.0)
    # the 95% interval covers the true slope in about 95% of noisy replications
    hits = 0
    trials = 400
    for _ in range(trials):
        y = 2 * x**-0.5 * np.exp(rng.normal(0, 0.1, x.size))
        f = power_fit(x, y)
        hits += f.ci_low <= -0.5 <= f.ci_high
    assert 0.92 <= hits / trials <= 0.98
    two = power_fit([1, 2], [1, 0.5])
    assert two.slope == pytest.approx(-1.0) and math.isnan(two.ci_low)
    with pytest.raises(ValueError):
        power_fit([1, 1], [1, 2])
