"""The runs of a study: ``--param`` parsing, the parameter points, their names and keys.

``--param KEY=V1,V2,...`` gives the values of one config key. The values are split at
top-level commas only (commas inside ``[...]``, ``{...}`` or quotes belong to the value,
so ``grid.cells=[100,100],[200,200]`` is two values) and each is parsed as TOML exactly
as ``--set`` parses it (``ddsolve.app.config.parse_override``): ``2`` is an integer,
``2.0`` a float, ``[100,100]`` a list, a bare word a string. Several ``--param`` form the
Cartesian product of their values (or, zipped, the points taken in step); ``--seeds K``
replicates every point K times with the seed key set to ``seed0 + i``.

Each run has a *directory name* (the parameter values, readable, plus eight hex digits
of the hash of its config) and a *resume key*: the SHA-256 of the canonical JSON of the
command name, the config with every override applied (the ``out`` keys removed, since the
sweep chooses the directory) and ``ddsolve.__version__``. A run whose directory holds a
completion marker with the same key is not run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddsolve.app.io import jsonable
from ddsolve.schema import ConfigError

__all__ = ["PARAM_FORM", "SEED_KEYS", "SweepParam", "RunSpec", "parse_param",
           "parameter_points", "canonical_json", "config_hash", "resume_key", "run_name",
           "strip_out"]

PARAM_FORM = ("expected KEY=V1,V2,... such as model.beta=2,3,4 (values are TOML, split at "
              "top-level commas: grid.cells=[100,100],[200,200])")
"""The allowed form of ``--param``, quoted in its error messages."""

SEED_KEYS = {"run": "run.seed", "steady": "steady.seed", "particles": "particles.seed",
             "validate": "validate.seed", "converge": "particles.seed"}
"""The config key ``--seeds`` sets, by command (``--seed-key`` chooses another)."""

_NAME_CHARS = re.compile(r"[^A-Za-z0-9.+\-]+")
_NAME_MAX = 60


@dataclass(frozen=True)
class SweepParam:
    """One swept config key: its dotted name, the values as written and as parsed."""

    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass
class RunSpec:
    """One run of a study.

    Attributes
    ----------
    index : int
        Position in the study (the row of ``sweep.csv``).
    settings : list of (key, text)
        The swept keys and their values as written (the seed as a decimal).
    overrides : list of str
        Every ``--set`` string of the run: the sweep's own, then ``key=text`` of each setting.
    config : dict
        The config file with ``overrides`` applied (not resolved).
    name : str
        Directory name inside the sweep's output directory.
    key : str
        Resume key (see the module docstring).
    """

    index: int
    settings: list[tuple[str, str]]
    overrides: list[str]
    config: dict[str, Any] = field(repr=False)
    name: str
    key: str


def parse_param(text: str) -> SweepParam:
    """Parse one ``--param KEY=V1,V2,...``.

    Parameters
    ----------
    text : str
        The argument as given.

    Returns
    -------
    SweepParam

    Raises
    ------
    ConfigError
        On ``--param``, naming the argument and the allowed form, for a missing ``=``, a
        key that is not dotted, an empty value or a value given twice.

    Examples
    --------
    >>> parse_param("grid.cells=[100,100],[200,200]").values
    ([100, 100], [200, 200])
    """
    from ddsolve.app.config import parse_override, split_values

    if "=" not in text:
        raise ConfigError("--param", f"got {text!r}; {PARAM_FORM}")
    key, rest = (part.strip() for part in text.split("=", 1))
    try:
        key = parse_override(f"{key}=0")[0]
    except ConfigError:
        raise ConfigError("--param", f"{key!r} is not a dotted config key; {PARAM_FORM}") from None
    texts = split_values(rest, "--param")
    if any(t == "" for t in texts):
        raise ConfigError("--param", f"{text!r} has an empty value; {PARAM_FORM}")
    values = tuple(parse_override(f"{key}={t}")[1] for t in texts)
    return SweepParam(key, tuple(texts), values)


def _check_distinct(param: SweepParam) -> None:
    seen: dict[str, str] = {}
    for t, v in zip(param.texts, param.values):
        canon = canonical_json(v)
        if canon in seen:
            raise ConfigError("--param", f"{param.key}: value {t} given twice (as {seen[canon]} and {t})")
        seen[canon] = t


def parameter_points(params: Sequence[SweepParam], zip_params: bool = False,
                     seeds: int | None = None, seed_key: str | None = None,
                     seed0: int = 0) -> list[list[tuple[str, str, Any]]]:
    """The study's points, each a list of ``(key, text, value)``.

    Parameters
    ----------
    params : sequence of SweepParam
        The swept keys, in the order given (the first varies slowest).
    zip_params : bool
        Take the i-th value of every key together (all need the same count) instead of
        the Cartesian product.
    seeds : int, optional
        Replicate every point this many times with ``seed_key = seed0 + i`` (innermost).
    seed_key : str, optional
        The seed's config key; required with ``seeds``.
    seed0 : int
        The first seed.

    Returns
    -------
    list
        One list of settings per run (an empty list for a study without parameters).

    Raises
    ------
    ConfigError
        On ``--param`` for a key given twice, on ``--zip`` for unequal value counts.
    """
    keys = [p.key for p in params]
    for k in keys:
        if keys.count(k) > 1:
            raise ConfigError("--param", f"{k} given more than once; give all its values in one --param")
    columns = [[(p.key, t, v) for t, v in zip(p.texts, p.values)] for p in params]
    if zip_params and columns:
        counts = {len(c) for c in columns}
        if len(counts) > 1:
            raise ConfigError("--zip", "every --param needs the same number of values, got "
                                       + ", ".join(f"{p.key}: {len(p.texts)}" for p in params))
        points = [list(row) for row in zip(*columns)]
        seen: set[str] = set()
        for row in points:  # zipped keys may repeat values; the points may not
            canon = canonical_json([v for _, _, v in row])
            if canon in seen:
                raise ConfigError("--zip", "the point " + ", ".join(f"{k}={t}" for k, t, _ in row)
                                  + " is given twice")
            seen.add(canon)
    else:
        for p in params:
            _check_distinct(p)
        points = [list(row) for row in itertools.product(*columns)]
    if seeds is None:
        return points
    if seed_key is None:
        raise ConfigError("--seed-key", "needed with --seeds for this command")
    return [point + [(seed_key, str(seed0 + i), seed0 + i)] for point in points for i in range(seeds)]


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces (one text per value)."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def strip_out(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` without the ``out`` key of any section (the sweep sets it)."""
    return {name: ({k: v for k, v in table.items() if k != "out"} if isinstance(table, Mapping) else table)
            for name, table in config.items()}


def _sha256(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def config_hash(command: str, config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the command and the config without its ``out`` keys: the run's
    identity, independent of the ddsolve version (its directory name ends with it)."""
    return _sha256({"command": command, "config": strip_out(config)})


def resume_key(command: str, config: Mapping[str, Any], version: str | None = None) -> str:
    """The resume key: SHA-256 (hex) of the command, the config without its ``out`` keys
    and the ddsolve version (default: the installed ``ddsolve.__version__``)."""
    if version is None:
        from ddsolve import __version__ as version
    return _sha256({"command": command, "config": strip_out(config), "ddsolve": version})


def run_name(settings: Sequence[tuple[str, str]], digest: str) -> str:
    """Directory name ``<key>=<value>_..._<hash8>``-style: each setting as its last key part
    (the whole dotted key where two settings share a last part) and its value with
    characters other than letters, digits, ``.+-`` replaced by ``_``; cut to 60
    characters; then ``-`` and the first 8 hex digits of ``digest``.

    Examples
    --------
    >>> run_name([("model.beta", "2"), ("grid.cells", "[100,100]")], "0123456789ab")
    'beta=2_cells=100_100-01234567'
    """
    lasts = [k.rsplit(".", 1)[-1] for k, _ in settings]
    parts = []
    for (key, text), last in zip(settings, lasts):
        label = last if lasts.count(last) == 1 else key
        value = _NAME_CHARS.sub("_", text).strip("_") or "_"
        parts.append(f"{label}={value}")
    stem = "_".join(parts)[:_NAME_MAX].rstrip("_") or "run"
    return f"{stem}-{digest[:8]}"
