"""The config vocabulary: declared parameters and the values they accept.

Every user-facing setting of ddsolve — a problem's model parameters, the keys of the
``[grid]``, ``[initial]``, ``[scheme]`` and ``[run]`` sections, and the sections that
other packages register (``[particles]``) — is declared once as a :class:`Param` (name,
value type, default, doc, and the condition under which it applies). The same
declaration validates the config file, fills in defaults, and is printed by
``ddsolve problems``; a :class:`ConfigError` always names the dotted key (``scheme.cfl``)
and says which values are allowed, in one line.

This module sits below everything else in ddsolve: it imports only the leaf modules
:mod:`ddsolve.model.expressions` and :mod:`ddsolve.model.schedule`, to check formulas
and schedules where they are read.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddsolve.model.expressions import ExpressionError, check_expression
from ddsolve.model.schedule import Schedule

__all__ = [
    "check_argument",
    "POSITIVE",
    "POSITIVE_OR_INF",
    "NON_NEGATIVE",
    "ConfigError",
    "config_key",
    "ValueType",
    "Real",
    "Integer",
    "Boolean",
    "Choice",
    "Fixed",
    "Text",
    "FilePath",
    "Expression",
    "Numeric",
    "ListOf",
    "OneOf",
    "Bounds",
    "ScheduleSpec",
    "XI",
    "XI_MAX",
    "When",
    "when_equals",
    "Param",
    "REQUIRED",
    "resolve_table",
    "format_table",
]


class ConfigError(ValueError):
    """Invalid configuration. ``key`` is the dotted config key (``"scheme.cfl"``).

    ``str(err)`` is the one-line message ``"<key>: <message>"``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = str(key)
        self.message = " ".join(str(message).split())  # one line
        super().__init__(f"{self.key}: {self.message}")


@contextmanager
def config_key(key: str) -> Iterator[None]:
    """Re-raise ``ValueError`` from model/grid constructors as :class:`ConfigError`
    naming ``key`` (a :class:`ConfigError` passes through unchanged)."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(key, str(err)) from None


def _show_int(value: int) -> str:
    """An integer, as ``about 10^n`` when it has more than 30 digits."""
    if abs(value).bit_length() <= 100:
        return str(value)
    return f"{'-' if value < 0 else ''}about 10^{int(abs(value).bit_length() * math.log10(2))}"


_SHOWN = 100  # characters of a value shown in a message


def _show(value: Any) -> str:
    """A value as written in TOML (strings quoted, booleans lower case), shortened to
    about 100 characters."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return _show_int(int(value))
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except (ValueError, RecursionError):  # e.g. a 3000-deep list
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


# ---------------------------------------------------------------------------------------
# value types
# ---------------------------------------------------------------------------------------
class ValueType:
    """A value type: ``check(value, key)`` returns the normalised value or raises
    :class:`ConfigError`; ``describe()`` says what is allowed."""

    def check(self, value: Any, key: str) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def claims(self, value: Any) -> bool:
        """Whether ``value`` is unmistakably meant for this type (so that :class:`OneOf`
        reports this type's specific error)."""
        return False

    def fail(self, value: Any, key: str) -> ConfigError:
        return ConfigError(key, f"must be {self.describe()}, got {_show(value)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


_INF_WORDS = {"inf": math.inf, "+inf": math.inf, "infinity": math.inf, "-inf": -math.inf}

_TINY = sys.float_info.min  # the smallest normal double, ~2.2e-308
_INT64 = (-(2**63), 2**63 - 1)


def _subnormal(x: float) -> bool:
    """``0 < |x| < 2.2e-308``: no time, step or scale can mean it (its reciprocal overflows
    and it has lost precision)."""
    return x != 0 and abs(x) < _TINY


def _subnormal_error(kind: ValueType, value: Any, key: str) -> ConfigError:
    return ConfigError(key, f"must be {kind.describe()}, got {_show(value)}, a subnormal number "
                            f"(0 < |x| < {_TINY:.3g}), too small to compute with")


@dataclass(frozen=True)
class Real(ValueType):
    """A real number, optionally bounded; ``allow_inf`` admits ``+inf`` (TOML ``inf``,
    or the string ``"inf"`` as written to JSON). A positive number (``low = 0`` open: a
    time, a step, a scale) must not be subnormal: its reciprocal overflows."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False

    def check(self, value, key):
        if isinstance(value, str) and self.allow_inf and value.strip().lower() in _INF_WORDS:
            value = _INF_WORDS[value.strip().lower()]
        if not _is_number(value):
            raise self.fail(value, key)
        try:
            x = float(value)
        except OverflowError:  # an integer beyond double precision
            raise self.fail(value, key) from None
        if math.isnan(x) or (math.isinf(x) and not (self.allow_inf and x > 0)):
            raise self.fail(value, key)
        if _subnormal(x) and self.low == 0 and self.low_open:  # a "positive" scale or time
            raise _subnormal_error(self, value, key)
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise self.fail(value, key)
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            raise self.fail(value, key)
        return x

    def describe(self):
        if self.low is not None and self.high is not None:
            lo = "(" if self.low_open else "["
            hi = ")" if self.high_open else "]"
            text = f"a number in {lo}{self.low:g}, {self.high:g}{hi}"
        elif self.low == 0 and self.low_open:
            text = "a positive number"
        elif self.low == 0:
            text = "a non-negative number"
        elif self.low is not None:
            text = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"a number {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = "a finite number"
        return text + (" or inf" if self.allow_inf else "")


@dataclass(frozen=True)
class Integer(ValueType):
    """An integer (booleans and floats such as ``10.0`` are rejected); always within the
    64-bit range, so that it fits NumPy, HDF5 and JSON readers."""

    low: int | None = None
    high: int | None = None

    def check(self, value, key):
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            raise self.fail(value, key)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.fail(value, key)
        if not _INT64[0] <= value <= _INT64[1]:
            raise ConfigError(key, f"must be {self.describe()} within the 64-bit range (|n| < 2^63), "
                                   f"got {_show_int(value)}")
        return int(value)

    def describe(self):
        if self.low is not None and self.high is not None:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer"


class Boolean(ValueType):
    """``true`` or ``false``."""

    def check(self, value, key):
        if not isinstance(value, (bool, np.bool_)):
            raise self.fail(value, key)
        return bool(value)

    def describe(self):
        return "true or false"


@dataclass(frozen=True)
class Choice(ValueType):
    """One of a fixed set of values (compared exactly, types included)."""

    values: tuple

    def check(self, value, key):
        for v in self.values:
            if type(v) is type(value) and v == value:
                return v
        raise self.fail(value, key)

    def describe(self):
        return "one of " + ", ".join(_show(v) for v in self.values)


@dataclass(frozen=True)
class Fixed(ValueType):
    """A parameter the problem fixes; only that value is accepted."""

    value: Any

    def check(self, value, key):
        inner = Real(allow_inf=True) if isinstance(self.value, float) else Choice((self.value,))
        try:
            got = inner.check(value, key)
        except ConfigError:
            raise self.fail(value, key) from None
        if got != self.value:
            raise self.fail(value, key)
        return self.value

    def describe(self):
        return f"fixed to {_show(self.value)} for this problem"


@dataclass(frozen=True)
class Text(ValueType):
    """A non-empty string."""

    what: str = "a non-empty string"

    def check(self, value, key):
        if not isinstance(value, str) or not value.strip():
            raise self.fail(value, key)
        return value

    def describe(self):
        return self.what


@dataclass(frozen=True)
class FilePath(Text):
    """A file system path: a non-empty string without NUL characters, at most 4096 bytes,
    each component at most 255 bytes (what POSIX file systems accept)."""

    what: str = "a directory path"

    def check(self, value, key):
        text = super().check(value, key)
        if "\0" in text:
            raise ConfigError(key, f"must be {self.describe()} without NUL characters, got {_show(text)}")
        try:
            raw = os.fsencode(text)
        except UnicodeError:
            raise ConfigError(key, f"must be {self.describe()} the file system can encode, "
                                   f"got {_show(text)}") from None
        longest = max(len(part) for part in raw.split(b"/"))
        if len(raw) > 4096 or longest > 255:
            raise ConfigError(key, f"must be {self.describe()} of at most 4096 bytes with names of "
                                   f"at most 255 bytes, got {len(raw)} bytes (longest name {longest})")
        return text


@dataclass(frozen=True)
class Expression(Text):
    """Text of a formula (or a name); a bare number is accepted and kept as text
    (``0`` → ``"0"``). ``what`` describes the allowed text.

    The text is checked against the expression grammar here, when the config is resolved
    (:func:`ddsolve.model.expressions.check_expression`: parsed, never evaluated), so a config
    that smuggles code in an expression stops with the key named before anything is built.
    Which names it may use depends on the grid and is checked when the model is built.
    """

    what: str = "an expression"

    def check(self, value, key):
        if _is_number(value):
            return repr(value) if isinstance(value, float) else str(value)
        text = super().check(value, key)
        try:
            check_expression(text)
        except ExpressionError as err:
            raise ConfigError(key, str(err)) from None
        return text


@dataclass(frozen=True)
class Numeric(ValueType):
    """A finite number or a rectangular (nested) list of them, of rank ``<= max_rank``.

    Returned as ``float`` or nested lists of ``float`` (so it round-trips through JSON).
    """

    max_rank: int = 1
    positive: bool = False

    def check(self, value, key):
        if not (_is_number(value) or isinstance(value, (list, tuple))):
            raise self.fail(value, key)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError, OverflowError, RecursionError):
            raise self.fail(value, key) from None
        if arr.dtype == object or arr.ndim > self.max_rank or (arr.ndim and arr.size == 0):
            raise self.fail(value, key)
        if not _all_numbers(value) or not np.all(np.isfinite(arr)):
            raise self.fail(value, key)
        if self.positive and not np.all(arr > 0):
            raise self.fail(value, key)
        if self.positive and np.any(arr < _TINY):
            raise _subnormal_error(self, value, key)
        return arr.tolist()

    def describe(self):
        what = "positive number" if self.positive else "number"
        shapes = {0: "", 1: " or a list of them", 2: " or a (nested) list of them"}
        return f"a {what}{shapes.get(self.max_rank, shapes[2])}"


def _all_numbers(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_all_numbers(v) for v in value)
    return _is_number(value)


@dataclass(frozen=True)
class ListOf(ValueType):
    """A list of values of one type; ``scalar_ok`` also accepts a single value
    (returned as a one-element list)."""

    item: ValueType
    min_length: int = 1
    max_length: int | None = None
    scalar_ok: bool = False

    def check(self, value, key):
        items = value
        if not isinstance(value, (list, tuple)):
            if not self.scalar_ok:
                raise self.fail(value, key)
            items = [value]
        n = len(items)
        if n < self.min_length or (self.max_length is not None and n > self.max_length):
            raise self.fail(value, key)
        out = []
        for v in items:
            try:
                out.append(self.item.check(v, key))
            except ConfigError:
                raise self.fail(value, key) from None
        return out

    def describe(self):
        size = f"{self.min_length}" if self.max_length == self.min_length else (
            f"{self.min_length} to {self.max_length}" if self.max_length else f"at least {self.min_length}")
        text = f"a list of {size} item(s), each {self.item.describe()}"
        return (f"{self.item.describe()} or " + text) if self.scalar_ok else text


@dataclass(frozen=True)
class OneOf(ValueType):
    """The first of several types that accepts the value."""

    options: tuple[ValueType, ...]

    def check(self, value, key):
        for option in self.options:
            if option.claims(value):
                return option.check(value, key)
        for option in self.options:
            try:
                return option.check(value, key)
            except ConfigError:
                continue
        raise self.fail(value, key)

    def describe(self):
        return " or ".join(o.describe() for o in self.options)


@dataclass(frozen=True)
class Bounds(ValueType):
    """``[lo, hi]`` or a list of one or two such pairs, finite with ``lo < hi`` (and a
    finite width ``hi - lo``); normalised to a list of pairs. ``limit`` bounds ``|lo|`` and
    ``|hi|``."""

    limit: float | None = None

    def check(self, value, key):
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(value, key)
        pairs = value if isinstance(value[0], (list, tuple)) else [value]
        if len(pairs) > 2:
            raise self.fail(value, key)
        out = []
        inner = Real() if self.limit is None else Real(-self.limit, self.limit)
        for pair in pairs:
            try:
                lo, hi = ListOf(inner, 2, 2).check(pair, key)
            except ConfigError:
                raise self.fail(value, key) from None
            if not lo < hi:
                raise ConfigError(key, f"lower bound must be below the upper bound, got {[lo, hi]}")
            if not math.isfinite(hi - lo):
                raise ConfigError(key, f"the width hi - lo of {[lo, hi]} is beyond double precision")
            out.append([lo, hi])
        return out

    def describe(self):
        within = f", each within [{-self.limit:g}, {self.limit:g}]" if self.limit is not None else ""
        return f"[lo, hi] with lo < hi, or [[lo, hi], [lo, hi]] for 2D{within}"


XI_MAX = 1e12
"""Largest value of a time schedule xi(t) (a speed-up of time; far above it every time step
vanishes)."""
XI = Real(0.0, XI_MAX, low_open=True)
"""A constant time schedule: a number in (0, :data:`XI_MAX`]."""


class ScheduleSpec(ValueType):
    """A schedule table ``{kind = "constant" | "power" | "table", ...}`` for
    :class:`~ddsolve.model.schedule.Schedule`."""

    KEYS = {"constant": {"value": Real(0.0, XI_MAX, low_open=True)},
            "power": {"xi0": Real(0.0, XI_MAX, low_open=True), "t0": Real(low=0, low_open=True),
                      "p": Real(0.0, 1000.0)},
            "table": {"times": ListOf(Real()), "values": ListOf(Real(0.0, XI_MAX, low_open=True))}}

    def claims(self, value):
        return isinstance(value, Mapping)

    def check(self, value, key):
        if not isinstance(value, Mapping):
            raise self.fail(value, key)
        kind = Choice(tuple(self.KEYS)).check(value.get("kind"), f"{key}.kind")
        fields = self.KEYS[kind]
        out: dict[str, Any] = {"kind": kind}
        for name in value:
            if name != "kind" and name not in fields:
                raise ConfigError(f"{key}.{name}",
                                  f"unknown key for kind {kind!r}; allowed: {', '.join(fields)}")
        for name, vtype in fields.items():
            if name not in value:
                raise ConfigError(f"{key}.{name}", f"required for kind {kind!r}: {vtype.describe()}")
            out[name] = vtype.check(value[name], f"{key}.{name}")
        with config_key(key):
            Schedule.from_spec(out)
        return out

    def describe(self):
        return ('a table {kind = "power", xi0, t0, p} (xi0 (1 + t/t0)^-p) or '
                '{kind = "table", times, values}')


# ---------------------------------------------------------------------------------------
# parameters and tables
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class When:
    """Condition under which a parameter applies, given the already resolved siblings."""

    description: str
    test: Callable[[Mapping[str, Any]], bool]


def when_equals(name: str, *values: Any) -> When:
    """The parameter applies when sibling ``name`` has one of ``values``."""
    shown = " | ".join(_show(v) for v in values)
    return When(f"{name} = {shown}", lambda resolved: resolved.get(name) in values)


class _Required:
    """Sentinel default of parameters that must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Param:
    """A declared parameter.

    Parameters
    ----------
    name : str
        Key inside its section.
    type : ValueType
        Allowed values.
    default : Any
        Default value; :data:`REQUIRED` if the key must be given, ``None`` if it is
        optional without default, or a callable of the resolved siblings (returning
        ``None`` to leave the key out).
    doc : str
        One-line documentation.
    when : When, optional
        Condition for the key to apply; giving it otherwise is an error.
    default_doc : str, optional
        How to show a callable default.
    """

    name: str
    type: ValueType
    default: Any = None
    doc: str = ""
    when: When | None = None
    default_doc: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_text(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if self.required:
            return "required"
        if self.default is None:
            return "-"
        return _show(self.default)


def resolve_table(raw: Mapping[str, Any], params: Sequence[Param], prefix: str,
                  what: str = "") -> dict[str, Any]:
    """Validate the section ``raw`` against ``params`` and fill in defaults.

    Parameters are processed in table order, so a condition or callable default may
    refer to the parameters declared before it. Unknown keys, keys whose condition
    does not hold, missing required keys and bad values raise :class:`ConfigError`
    naming ``<prefix>.<key>``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix, f"must be a table of keys, got {_show(raw)}")
    known = [p.name for p in params]
    for name in raw:
        if name not in known:
            where = f" for {what}" if what else ""
            raise ConfigError(f"{prefix}.{name}",
                              f"unknown key{where}; allowed keys: {', '.join(known) or 'none'}")
    out: dict[str, Any] = {}
    for p in params:
        key = f"{prefix}.{p.name}"
        applies = p.when is None or p.when.test(out)
        if p.name in raw:
            if not applies:
                raise ConfigError(key, f"only used when {p.when.description}")
            out[p.name] = p.type.check(raw[p.name], key)
        elif applies:
            if p.required:
                raise ConfigError(key, f"required: {p.type.describe()}")
            value = p.default(out) if callable(p.default) else p.default
            if value is not None:
                out[p.name] = value
    return out


def format_table(params: Sequence[Param], indent: str = "  ") -> str:
    """Human-readable listing of a parameter table (for ``ddsolve problems``)."""
    lines = []
    for p in params:
        cond = f" [when {p.when.description}]" if p.when else ""
        lines.append(f"{indent}{p.name} = {p.default_text()}{cond}")
        lines.append(f"{indent}    {p.doc}" if p.doc else f"{indent}    ")
        lines.append(f"{indent}    allowed: {p.type.describe()}")
    return "\n".join(lines)


POSITIVE = Real(low=0.0, low_open=True)
"""A finite number > 0."""
POSITIVE_OR_INF = Real(low=0.0, low_open=True, allow_inf=True)
"""A number > 0 or inf (an inverse temperature)."""
NON_NEGATIVE = Real(low=0.0)
"""A finite number >= 0."""


def check_argument(name: str, value: Any, kind: ValueType, owner: str | None = None) -> Any:
    """Check a Python argument with the config vocabulary.

    Returns the checked value (``float`` for :class:`Real`, ``int`` for :class:`Integer`);
    raises ``ValueError("<owner>: <name> must be <allowed>, got <value>")``, so the
    constructors of the package and the config file accept and refuse the same values.

    Examples
    --------
    >>> check_argument("dt", 0.1, POSITIVE)
    0.1
    >>> check_argument("n", 0, Integer(low=1))
    Traceback (most recent call last):
    ...
    ValueError: n must be an integer >= 1, got 0
    """
    try:
        return kind.check(value, name)
    except ConfigError as err:
        where = f"{owner}: " if owner else ""
        raise ValueError(f"{where}{name} {err.message}") from None
