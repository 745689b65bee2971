"""Property tests of the config parser: valid configs resolve and round-trip, invalid
values are rejected naming the right key, ``--set`` overrides parse as TOML."""

from __future__ import annotations

import json
import math

import pytest
import tomllib
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ddsolve.app.config import (
    GRID_PARAMS,
    RUN_PARAMS,
    SCHEME_PARAMS,
    ConfigError,
    apply_overrides,
    load_config,
    parse_override,
    resolve,
)
from ddsolve.app.io import jsonable
from ddsolve.problems import get_problem

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------------------------
# strategies for valid configs
# ---------------------------------------------------------------------------------------
@st.composite
def pairs(draw):
    lo = draw(finite)
    return [lo, lo + draw(st.floats(0.1, 50))]


@st.composite
def grids(draw):
    """(grid section, kind) with kind in {"1d", "2d", "radial"}."""
    kind = draw(st.sampled_from(["1d", "2d", "radial"]))
    cells = st.integers(2, 500)
    if kind == "radial":
        grid = {"coordinates": "radial", "dim": draw(st.integers(1, 400)), "r_max": draw(positive),
                "cells": draw(st.one_of(cells, st.lists(cells, min_size=1, max_size=1)))}
    else:
        n = 1 if kind == "1d" else 2
        bounds = draw(pairs()) if n == 1 and draw(st.booleans()) else [draw(pairs()) for _ in range(n)]
        grid = {"bounds": bounds,
                "cells": draw(st.one_of(cells, st.lists(cells, min_size=n, max_size=n)))}
        if draw(st.booleans()):
            grid["periodic"] = draw(st.one_of(st.booleans(), st.lists(st.booleans(), min_size=n, max_size=n)))
    if kind != "2d" and draw(st.booleans()):
        grid["charge_bounds"] = draw(pairs())
        grid["charge_cells"] = draw(cells)
    return grid, kind


xi_values = st.one_of(
    positive,
    st.builds(lambda a, b, p: {"kind": "power", "xi0": a, "t0": b, "p": p}, positive, positive,
              st.floats(0, 3)),
    st.builds(lambda v: {"kind": "table", "times": [0.0, 1.0, 2.0], "values": v},
              st.lists(positive, min_size=3, max_size=3)),
)
betas = st.one_of(positive, st.just(math.inf))


@st.composite
def models(draw):
    problem = draw(st.sampled_from(["fokker-planck", "curie-weiss", "kuramoto", "aggregation", "custom"]))
    model = {"problem": problem}
    if problem != "aggregation" and draw(st.booleans()):
        model["beta"] = draw(betas)
    if draw(st.booleans()):
        model["xi"] = draw(xi_values)
    if problem != "custom":
        pot = draw(st.sampled_from(["zero", "quadratic", "double-well", "muller-brown", "x**2/2", None]))
        if pot is not None:
            model["potential"] = pot
        if pot == "quadratic" and draw(st.booleans()):
            model["stiffness"] = draw(st.one_of(positive, st.just([[2.0, 0.5], [0.5, 1.0]])))
            model["center"] = draw(st.one_of(finite, st.lists(finite, min_size=2, max_size=2)))
        if pot == "double-well" and draw(st.booleans()):
            model["depth"] = draw(finite)
    if problem == "curie-weiss":
        model["theta"] = draw(finite)
    if problem == "kuramoto":
        model["kappa"] = draw(finite)
    if problem == "aggregation":
        ker = draw(st.sampled_from(["attractive-repulsive", "gaussian", "z**2/2", None]))
        if ker is not None:
            model["interaction"] = ker
        if ker == "gaussian":
            model["sigma"] = draw(positive)
        if ker == "attractive-repulsive":
            model["b"] = draw(st.floats(0.1, 1.0))
            model["a"] = draw(st.floats(1.5, 4.0))
    if problem == "custom":
        model["interaction"] = draw(st.sampled_from(["cos(x - y)", "z**2", "exp(-(x-y)**2)"]))
        if draw(st.booleans()):
            model["potential"] = draw(st.sampled_from(["x**4", "0", "sin(x)**2"]))
    return model


@st.composite
def initials(draw):
    kind = draw(st.sampled_from(["gaussian", "uniform", "expression", "mixture", None]))
    if kind is None:
        return {}
    if kind == "gaussian":
        out = {"kind": kind}
        if draw(st.booleans()):
            out["mean"] = draw(finite)
        if draw(st.booleans()):
            out["std"] = draw(positive)
        return out
    if kind == "uniform":
        return {"kind": kind, **({"bounds": draw(pairs())} if draw(st.booleans()) else {})}
    if kind == "mixture":
        return {"kind": kind, "means": draw(st.lists(finite, min_size=1, max_size=4)), "std": draw(positive)}
    return {"kind": kind, "expression": draw(st.sampled_from(["1 + x**2", "exp(-x**2)", "1"]))}


@st.composite
def schemes(draw):
    scheme = {}
    implicit = draw(st.booleans())
    if implicit or draw(st.booleans()):
        scheme["implicit"] = implicit
    if draw(st.booleans()):
        scheme["order"] = 1 if implicit else draw(st.sampled_from([1, 2]))
    if scheme.get("order", 1 if implicit else 2) == 2 and draw(st.booleans()):
        scheme["theta"] = draw(st.floats(1.0, 2.0))
    if draw(st.booleans()):
        scheme["interaction"] = draw(st.sampled_from(["auto", "dense", "fft", "separable"]))
    if draw(st.booleans()):
        scheme["dt_min"] = draw(st.floats(1e-16, 1e-6))
    if implicit:
        scheme["dt"] = draw(positive)
        if draw(st.booleans()):
            scheme["time_order"] = draw(st.sampled_from([1, 2]))
            scheme["flux"] = draw(st.sampled_from(["upwind", "logmean", "sg"]))
        if draw(st.booleans()):
            scheme["newton_tol"] = draw(st.floats(1e-14, 1e-4))
            scheme["max_newton"] = draw(st.integers(1, 100))
    else:
        if draw(st.booleans()):
            scheme["rk_order"] = draw(st.sampled_from([1, 2, 3]))
        if draw(st.booleans()):
            scheme["cfl"] = draw(st.floats(0.01, 1.0))
        if draw(st.booleans()):
            scheme["dt"] = draw(positive)
    return scheme


@st.composite
def runs(draw):
    t_final = draw(positive)
    run = {"t_final": t_final}
    if draw(st.booleans()):
        run["save_every"] = t_final / draw(st.integers(1, 1000))
    if draw(st.booleans()):
        run["out"] = draw(st.from_regex(r"[a-z][a-z0-9_/-]{0,20}", fullmatch=True))
    if draw(st.booleans()):
        run["seed"] = draw(st.integers(0, 2**31))
    return run


@st.composite
def valid_configs(draw):
    grid, kind = draw(grids())
    raw = {"model": draw(models()), "grid": grid, "run": draw(runs())}
    initial = draw(initials())
    if initial:
        raw["initial"] = initial
    scheme = draw(schemes())
    if scheme:
        raw["scheme"] = scheme
    return raw


# ---------------------------------------------------------------------------------------
# valid configs
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(valid_configs())
def test_valid_configs_resolve_and_round_trip(raw):
    resolved = resolve(raw)
    assert list(resolved) == ["model", "grid", "initial", "scheme", "run"]
    assert resolve(resolved) == resolved  # idempotent
    # through summary.json (non-finite numbers as strings) and back
    text = json.dumps(jsonable(resolved), allow_nan=False)
    assert resolve(json.loads(text)) == resolved
    # nothing given is dropped, nothing unexpected is added
    for section, keys in raw.items():
        assert set(keys) <= set(resolved[section])
    for name, value in raw["run"].items():
        assert resolved["run"][name] == pytest.approx(value)


def test_defaults_are_filled_in():
    cfg = resolve({"model": {"problem": "fokker-planck"}, "grid": {"bounds": [-1, 1], "cells": 10},
                   "run": {"t_final": 2.0}})
    assert cfg["model"] == {"problem": "fokker-planck", "beta": 1.0, "xi": 1.0, "potential": "quadratic",
                            "stiffness": 1.0, "center": 0.0}
    assert cfg["grid"] == {"coordinates": "cartesian", "bounds": [[-1.0, 1.0]], "cells": [10],
                           "periodic": [False]}
    assert cfg["initial"] == {"kind": "gaussian", "mean": 0.0, "std": 1.0}
    assert cfg["scheme"] == {"name": "fv", "order": 2, "theta": 2.0, "interaction": "auto",
                             "potential_values": "point",
                             "implicit": False, "rk_order": 3, "cfl": 0.9, "dt_min": 1e-14,
                             "time": "auto", "integrator": "auto", "rtol": "auto", "atol": "auto",
                             "flux": "auto", "max_newton": 8}
    assert cfg["run"] == {"t_final": 2.0, "save_every": 0.2, "out": "out", "seed": 0,
                          "checkpoint_every": 60.0, "max_steps": 10**8}


def test_schema_tables_have_unique_documented_keys():
    for table in (GRID_PARAMS, SCHEME_PARAMS, RUN_PARAMS):
        names = [p.name for p in table]
        assert len(names) == len(set(names))
        assert all(p.doc for p in table)


# ---------------------------------------------------------------------------------------
# invalid values
# ---------------------------------------------------------------------------------------
not_numbers = st.one_of(st.text(max_size=5).filter(lambda s: s.strip().lower() not in
                                                    {"inf", "+inf", "infinity"}),
                        st.booleans(), st.lists(st.integers(), max_size=2))
BAD = {
    "scheme.cfl": st.one_of(st.floats(1.0, 1e6, exclude_min=True), st.floats(-1e6, 0.0),
                            st.just(math.nan), not_numbers),
    "scheme.order": st.one_of(st.integers().filter(lambda n: n not in (1, 2)), st.just(2.0), not_numbers),
    "scheme.rk_order": st.integers().filter(lambda n: n not in (1, 2, 3)),
    "scheme.theta": st.one_of(st.floats(2.0, 10.0, exclude_min=True), st.floats(-10.0, 1.0, exclude_max=True)),
    "scheme.interaction": st.text(max_size=8).filter(lambda s: s not in ("auto", "dense", "fft", "separable")),
    "scheme.name": st.one_of(st.just("bdf"), st.text(max_size=5).filter(lambda s: s not in ("fv", "jko"))),
    "scheme.implicit": st.one_of(st.integers(), st.text(max_size=4)),
    "grid.cells": st.one_of(st.integers(max_value=1), st.floats(2.5, 100.5), st.lists(st.integers(max_value=1),
                                                                                   min_size=1, max_size=2),
                            st.lists(st.integers(2, 10), min_size=3, max_size=4), st.text(max_size=3)),
    "run.t_final": st.one_of(st.floats(-1e6, 0.0), st.just(math.inf), st.just(math.nan), not_numbers),
    "run.save_every": st.one_of(st.floats(-1e6, 0.0), st.just(math.nan), not_numbers),
    "run.seed": st.one_of(st.integers(max_value=-1), st.floats(0.5, 10.5), not_numbers),
    "run.out": st.one_of(st.just(""), st.integers(), st.booleans()),
    "model.beta": st.one_of(st.floats(-1e6, 0.0), st.just(math.nan), st.just(-math.inf), not_numbers),
    "model.xi": st.one_of(st.floats(-1e6, 0.0), st.just(math.nan), st.just(math.inf), not_numbers),
    "model.problem": st.text(max_size=10).filter(lambda s: s not in ("fokker-planck", "curie-weiss", "kuramoto",
                                                                     "aggregation", "custom")),
    "initial.kind": st.text(max_size=10).filter(lambda s: s not in ("gaussian", "uniform", "expression",
                                                                    "mixture")),
}


@SETTINGS
@given(valid_configs(), st.sampled_from(sorted(BAD)), st.data())
def test_invalid_values_name_their_key(raw, key, data):
    section, name = key.split(".")
    value = data.draw(BAD[key])
    raw.setdefault(section, {})[name] = value
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    err = info.value
    assert err.key == key, (key, value, str(err))
    assert str(err).startswith(f"{key}: ")
    assert "\n" not in str(err)


@SETTINGS
@given(valid_configs(), st.sampled_from(["model", "grid", "initial", "scheme", "run"]),
       st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
def test_unknown_keys_are_errors(raw, section, name):
    known = set(resolve(raw)[section]) | {"problem", "kind", "coordinates", "bounds", "periodic", "dim",
                                          "r_max", "charge_bounds", "charge_cells", "cov", "std", "mean",
                                          "means", "weights", "expression", "dt", "theta"}
    known |= {p.name for p in GRID_PARAMS + SCHEME_PARAMS + RUN_PARAMS}
    # keys a problem declares but that do not apply to this draw get their own message
    known |= {p.name for p in get_problem(raw["model"]["problem"]).parameters()}
    assume(name not in known)
    raw.setdefault(section, {})[name] = 1
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    assert info.value.key == f"{section}.{name}"
    assert "unknown key" in info.value.message


@SETTINGS
@given(valid_configs(), st.from_regex(r"[a-z]{1,10}", fullmatch=True))
def test_unknown_sections_are_errors(raw, name):
    assume(name not in ("model", "grid", "initial", "scheme", "run"))
    raw[name] = {"x": 1}
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    assert info.value.key == name


@pytest.mark.parametrize("section, value, key, fragment", [
    ("scheme", {"cfl": 1.5}, "scheme.cfl", "(0, 1]"),
    ("scheme", {"cfl": 0.0}, "scheme.cfl", "(0, 1]"),
    ("scheme", {"interaction": "magic"}, "scheme.interaction", "'fft'"),
    ("scheme", {"name": "bdf"}, "scheme.name", "must be one of 'fv', 'jko'"),
    ("scheme", {"name": "jko"}, "scheme.dt", "required"),
    ("scheme", {"name": "jko", "dt": 0.1, "dt_max": 0.05}, "scheme.dt_max", "at least"),
    ("scheme", {"name": "jko", "dt": 0.1, "implicit": True}, "scheme.implicit", "only used when"),
    ("scheme", {"name": "jko", "dt": 0.1, "method": "fv", "atoms": 10}, "scheme.atoms", "only used when"),
    ("scheme", {"dt": 0.1, "inner_tol": 1e-9}, "scheme.inner_tol", "only used when"),
    ("scheme", {"implicit": True}, "scheme.dt", "required"),
    ("scheme", {"implicit": True, "dt": 0.1, "order": 2}, "scheme.order", "order must be 1"),
    ("scheme", {"implicit": True, "dt": 0.1, "theta": 1.5}, "scheme.theta", "only used when"),
    ("scheme", {"implicit": True, "dt": 0.1, "cfl": 0.5}, "scheme.cfl", "only used when"),
    ("scheme", {"implicit": True, "dt": 0.1, "flux": "central"}, "scheme.flux", "upwind"),
    ("scheme", {"implicit": True, "dt": 0.1, "time_order": 3}, "scheme.time_order", "1"),
    ("scheme", {"time": "explicit", "flux": "logmean"}, "scheme.flux", "only used when"),
    ("scheme", {"newton_tol": 1e-8}, "scheme.newton_tol", "only used when"),
    ("scheme", {"order": 1, "theta": 1.5}, "scheme.theta", "only used when"),
    ("grid", {"bounds": [1, -1], "cells": 10}, "grid.bounds", "lower bound"),
    ("grid", {"bounds": [[0, 1], [1, 1]], "cells": 10}, "grid.bounds", "lower bound"),
    ("grid", {"bounds": [0, 1], "cells": 1}, "grid.cells", "integer >= 2"),
    ("grid", {"bounds": [0, 1], "cells": 10.0}, "grid.cells", "integer >= 2"),
    ("grid", {"bounds": [0, 1], "cells": [10, 10]}, "grid.cells", "1 or 1 entries"),
    ("grid", {"bounds": [0, 1], "cells": 10, "periodic": [True, False]}, "grid.periodic", "entries"),
    ("grid", {"bounds": [0, 1], "cells": 10, "dim": 3}, "grid.dim", "only used when"),
    ("grid", {"coordinates": "radial", "cells": 10, "dim": 3}, "grid.r_max", "required"),
    ("grid", {"coordinates": "radial", "cells": 10, "dim": 0, "r_max": 1}, "grid.dim", ">= 1"),
    ("grid", {"bounds": [[0, 1], [0, 1]], "cells": 4, "charge_bounds": [0, 1], "charge_cells": 4},
     "grid.charge_bounds", "1D grid"),
    ("grid", {"bounds": [0, 1], "cells": 4, "charge_bounds": [0, 1]}, "grid.charge_cells", "required"),
    ("run", {"t_final": 0.0}, "run.t_final", "positive"),
    ("run", {"t_final": 1.0, "save_every": 1e-9}, "run.save_every", "snapshots"),
    ("model", {"problem": "fokker-planck", "theta": 1.0}, "model.theta", "unknown key"),
    ("model", {"problem": "fokker-planck", "potential": "double-well", "stiffness": 2.0},
     "model.stiffness", "only used when potential = 'quadratic'"),
    ("model", {"problem": "aggregation", "beta": 2.0}, "model.beta", "fixed to inf"),
    ("model", {"problem": "curie-weiss", "xi": {"kind": "power", "xi0": 1.0, "t0": 0.0, "p": 1.0}},
     "model.xi.t0", "positive"),
    ("model", {"problem": "curie-weiss", "xi": {"kind": "table", "times": [1, 0], "values": [1, 1]}},
     "model.xi", "increasing"),
    ("model", {"problem": "curie-weiss", "xi": {"kind": "cosine"}}, "model.xi.kind", "'power'"),
    ("model", {"problem": "custom"}, "model.interaction", "required"),
    ("model", {"beta": 1.0}, "model.problem", "required"),
    ("initial", {"kind": "gaussian", "cov": 1.0, "std": 1.0}, "initial.std", "only used when"),
    ("initial", {"kind": "mixture"}, "initial.means", "required"),
])
def test_specific_messages(section, value, key, fragment):
    raw = {"model": {"problem": "fokker-planck"}, "grid": {"bounds": [-1, 1], "cells": 10},
           "run": {"t_final": 1.0}}
    raw[section] = value
    with pytest.raises(ConfigError) as info:
        resolve(raw)
    assert info.value.key == key
    assert fragment in info.value.message


def test_inf_spellings():
    base = {"model": {"problem": "fokker-planck"}, "grid": {"bounds": [-1, 1], "cells": 10},
            "run": {"t_final": 1.0}}
    for beta in (math.inf, "inf", "Infinity"):
        base["model"]["beta"] = beta
        assert resolve(base)["model"]["beta"] == math.inf
    agg = resolve({**base, "model": {"problem": "aggregation"}})
    assert agg["model"]["beta"] == math.inf


# ---------------------------------------------------------------------------------------
# --set
# ---------------------------------------------------------------------------------------
def _toml(value) -> str:
    """TOML text of a value (numbers, booleans, strings, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == math.inf else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    return str(value)


def _toml_char(c: str) -> str:
    """A character inside a TOML basic string."""
    if c in '"\\':
        return "\\" + c
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\u{ord(c):04x}"
    return c


toml_values = st.recursive(
    st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.just(math.inf), st.booleans(),
              st.text(st.characters(exclude_categories=("Cs",)), max_size=10)),  # TOML has no surrogates
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@SETTINGS
@given(st.from_regex(r"(model|grid|initial|scheme|run)\.[a-z_][a-z0-9_-]{0,10}", fullmatch=True), toml_values)
def test_set_values_parse_as_toml(key, value):
    got_key, got = parse_override(f"{key}={_toml(value)}")
    assert got_key == key
    assert got == value
    assert got == tomllib.loads(f"v = {_toml(value)}")["v"]


@SETTINGS
@given(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True))
def test_bare_words_are_strings(word):
    assume(word not in ("true", "false", "inf", "nan") and not word[0].isdigit())
    assert parse_override(f"model.potential={word}") == ("model.potential", word)


@pytest.mark.parametrize("text, key, value", [
    ("model.beta=3", "model.beta", 3),
    ("model.beta=inf", "model.beta", math.inf),
    ("grid.cells=[100]", "grid.cells", [100]),
    ("model.potential=double-well", "model.potential", "double-well"),
    ("model.potential=x**4/4 - x**2/2", "model.potential", "x**4/4 - x**2/2"),
    ("initial.expression=exp(-x**2)", "initial.expression", "exp(-x**2)"),
    ("model.xi={kind = \"power\", xi0 = 1, t0 = 2, p = 0.5}", "model.xi",
     {"kind": "power", "xi0": 1, "t0": 2, "p": 0.5}),
    ("scheme.implicit=true", "scheme.implicit", True),
    (" run.out = a b ", "run.out", "a b"),
    ("run.out=x=y", "run.out", "x=y"),
])
def test_set_examples(text, key, value):
    assert parse_override(text) == (key, value)


def test_overrides_create_keys_and_are_validated():
    raw = {"model": {"problem": "fokker-planck"}, "grid": {"bounds": [-1, 1], "cells": 10}}
    out = apply_overrides(raw, ["run.t_final=2", "model.beta=inf", "grid.cells=[100]", "model.xi.kind=power",
                                "model.xi.xi0=1", "model.xi.t0=1", "model.xi.p=0.5"])
    assert raw == {"model": {"problem": "fokker-planck"}, "grid": {"bounds": [-1, 1], "cells": 10}}  # copied
    cfg = resolve(out)
    assert cfg["run"]["t_final"] == 2.0
    assert cfg["model"]["beta"] == math.inf
    assert cfg["grid"]["cells"] == [100]
    assert cfg["model"]["xi"] == {"kind": "power", "xi0": 1.0, "t0": 1.0, "p": 0.5}
    with pytest.raises(ConfigError) as info:
        resolve(apply_overrides(out, ["scheme.cfl=2"]))
    assert info.value.key == "scheme.cfl"
    with pytest.raises(ConfigError) as info:
        resolve(apply_overrides(out, ["model.bogus=2"]))
    assert info.value.key == "model.bogus"


@pytest.mark.parametrize("text, key", [
    ("model.beta", "--set"),
    ("beta=2", "--set"),
    ("=2", "--set"),
    ("nosuch.key=1", "nosuch"),
    ("model.beta.x=1", "model.beta"),
])
def test_bad_overrides(text, key):
    raw = {"model": {"problem": "fokker-planck", "beta": 2.0}}
    with pytest.raises(ConfigError) as info:
        apply_overrides(raw, [text])
    assert info.value.key == key


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.key == "config"
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nproblem = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.key == "config" and "invalid TOML" in info.value.message
    good = tmp_path / "good.toml"
    good.write_text('[model]\nproblem = "curie-weiss"\n[grid]\nbounds = [-2, 2]\ncells = 20\n'
                    '[run]\nt_final = 1\n')
    cfg = load_config(good, ["model.beta=inf", "grid.cells=[30]"])
    assert cfg["model"]["beta"] == math.inf and cfg["grid"]["cells"] == [30]
