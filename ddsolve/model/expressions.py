"""Symbolic expressions for potentials, kernels and densities given as text.

Users write ``V``, ``U`` or an initial density as strings in the config
(``"x**4/4 - x**2/2"``, ``"exp(-(x - y)**2)"``). The text is read **without ever being
evaluated**: Python's :mod:`ast` parses it, a walker accepts only the grammar below and
builds the SymPy expression node by node, and SymPy differentiates it and compiles it to
vectorised NumPy functions. So the same text drives the grid solver (values on cells) and
the particle dynamics (gradients at points). No user string reaches ``eval``, ``exec``,
``sympify`` or ``parse_expr``; a config file is data, whoever wrote it.

The grammar (everything else is an :class:`ExpressionError`)
-------------------------------------------------------------
- numbers: integer and decimal literals (``2``, ``0.5``, ``1e-3``); no complex, no strings;
- names: the variables of the context (axis names ``x``, ``y``, ``r``, ``c``; kernel
  arguments ``x, y`` or ``z``), the named parameters, and the constants ``pi`` and ``E``;
- operators: ``+ - * / **`` and unary ``-``/``+``; ``^`` is read as ``**``;
- calls of the functions in :data:`FUNCTIONS` by name, with positional arguments only;
- conditions, only as the first argument of ``where(cond, a, b)`` or the odd arguments
  of ``piecewise(c1, v1, c2, v2, ..., otherwise)``: ``< <= > >=`` (chains allowed),
  ``and``, ``or``, ``not``.

Work is bounded before anything is built: at most :data:`MAX_LENGTH` characters,
:data:`MAX_NODES` syntax nodes and :data:`MAX_DEPTH` levels of nesting (a run of ``+``/``-``
or ``*``/``/`` counts as one level); a constant exponent must satisfy
``|p| <= MAX_EXPONENT``, and a power of two constants must stay within double precision,
so exponent towers such as ``9**9**9`` are refused instead of computed.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence

import numpy as np
import sympy

__all__ = [
    "ExpressionError",
    "CompiledExpression",
    "compile_expression",
    "parse_expression",
    "check_expression",
    "free_symbol_names",
    "FUNCTIONS",
    "CONSTANTS",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "describe_grammar",
]

MAX_LENGTH = 2000
"""Longest accepted expression, in characters."""
MAX_NODES = 1000
"""Most syntax-tree nodes in one expression."""
MAX_DEPTH = 50
"""Deepest nesting (parentheses, calls, powers, unary signs); a run of ``+``/``-`` or of
``*``/``/`` is one level."""
MAX_EXPONENT = 1000
"""Largest accepted absolute value of a constant exponent."""
_MAX_LOG10 = 308.0  # |b**p| of two constants, and every constant, stays below 1e308


class ExpressionError(ValueError):
    """Raised when an expression cannot be parsed, breaks the grammar or uses unknown names."""


# name -> (sympy builder, fewest arguments, most arguments or None for any number)
_UNARY = ("exp", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
          "asinh", "acosh", "atanh", "erf", "erfc", "sign", "Abs")
FUNCTIONS: dict[str, tuple[Callable | None, int, int | None]] = {
    **{name: (getattr(sympy, name), 1, 1) for name in _UNARY},
    "abs": (sympy.Abs, 1, 1),
    "log": (sympy.log, 1, 2),          # log(x) natural, log(x, b) to base b
    "atan2": (sympy.atan2, 2, 2),      # atan2(y, x)
    **{name: (sympy.Min, 1, None) for name in ("min", "Min")},
    **{name: (sympy.Max, 1, None) for name in ("max", "Max")},
    "where": (None, 3, 3),             # where(cond, a, b): a where cond holds, else b
    "piecewise": (None, 3, None),      # piecewise(c1, v1, c2, v2, ..., otherwise)
}
"""The functions an expression may call, with their arities."""

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}
"""Named constants."""

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}

# What a rejected syntax node is, in words, for the error message.
_REFUSED = {
    ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "subscripts (a[b])",
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "starred arguments (*a)",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists ([...])",
    ast.Tuple: "tuples",
    ast.Set: "sets ({...})",
    ast.Dict: "dicts ({...})",
    ast.JoinedStr: "strings",
    ast.FormattedValue: "strings",
    ast.IfExp: "if-else (use where(cond, a, b))",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}


def describe_grammar() -> str:
    """One paragraph on what an expression may contain (printed by ``ddsolve problems``)."""
    funcs = ", ".join(sorted({n for n in FUNCTIONS if n not in ("where", "piecewise")}, key=str.lower))
    return (
        "Expressions are read safely, never evaluated as Python. They may contain numbers, "
        "the variables of the context (axis names, or x, y / z for kernels), the constants "
        f"pi and E, the operators + - * / ** (^ is read as **) and unary minus, and calls of "
        f"{funcs}; where(cond, a, b) and piecewise(c1, v1, ..., otherwise) take conditions "
        "made of < <= > >= and, or, not. Limits: "
        f"{MAX_LENGTH} characters, {MAX_NODES} syntax nodes, nesting depth {MAX_DEPTH}, "
        f"constant exponents up to {MAX_EXPONENT} in absolute value."
    )


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Builder:
    """Walks a checked syntax tree and builds the SymPy expression.

    ``names`` maps each allowed name to its SymPy symbol; with ``names=None`` any
    ordinary identifier is taken as a (plain) symbol, which serves :func:`free_symbol_names`.
    """

    def __init__(self, text: str, source: str, names: dict[str, sympy.Symbol] | None) -> None:
        self.text, self.source, self.names = text, source, names

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"expression {_short(self.text)}: {message}")

    # -- numbers and names -------------------------------------------------------------
    def constant(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "strings" if isinstance(value, (str, bytes)) else f"the literal {value!r}"
            raise self.fail(f"{kind} are not allowed" if kind == "strings" else f"{kind} is not allowed")
        if isinstance(value, int):
            if value.bit_length() > 1023:
                raise self.fail("an integer literal beyond double precision")
            return sympy.Integer(value)
        if not math.isfinite(value):
            raise self.fail("a number literal beyond double precision")
        # as sympy's own parser does: a Float from the literal's text
        source = ast.get_source_segment(self.source, node)
        return sympy.Float(source.replace("_", "")) if source else sympy.Float(value)

    def name(self, node: ast.Name) -> sympy.Expr:
        ident = node.id
        if ident.startswith("_"):
            raise self.fail(f"the name {ident!r} is not allowed (names may not start with '_')")
        if self.names is not None and ident in self.names:
            return self.names[ident]
        if ident in FUNCTIONS:
            raise self.fail(f"{ident!r} is a function; call it, as in {ident}(...)")
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if self.names is None:
            return sympy.Symbol(ident)
        allowed = sorted(self.names) + sorted(CONSTANTS)
        raise self.fail(f"uses unknown symbols [{ident!r}]; allowed names are {allowed}")

    # -- the expression tree ----------------------------------------------------------
    def expr(self, node: ast.AST, depth: int) -> sympy.Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.expr(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return +self.expr(node.operand, depth + 1)
            if isinstance(node.op, ast.Not):
                raise self.fail("'not' is only allowed in the condition of where(...) or piecewise(...)")
            raise self.fail("the operator ~ is not allowed")
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail("comparisons and and/or are only allowed as the condition of "
                            "where(cond, a, b) or piecewise(...)")
        raise self.refuse(node)

    def refuse(self, node: ast.AST) -> ExpressionError:
        what = _REFUSED.get(type(node), type(node).__name__)
        return self.fail(f"{what} not allowed; expressions take numbers, names, + - * / ** "
                         "and function calls")

    def binop(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        if type(node.op) not in _BINARY:
            sym = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&",
                   ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>"}.get(type(node.op), "?")
            raise self.fail(f"the operator {sym} is not allowed (allowed: + - * / **)")
        if isinstance(node.op, ast.Pow):
            return self.power(self.expr(node.left, depth + 1), self.expr(node.right, depth + 1))
        # a run of + and - (or of * and /) is walked iteratively: long sums stay shallow
        group = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div)
        chain = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, group):
            chain.append((node.op, node.right))
            node = node.left
        out = self.expr(node, depth + 1)
        for op, right in reversed(chain):
            rhs = self.expr(right, depth + 1)
            if isinstance(op, ast.Add):
                out = out + rhs
            elif isinstance(op, ast.Sub):
                out = out - rhs
            elif isinstance(op, ast.Mult):
                out = out * rhs
            else:
                out = out / rhs
        return out

    def power(self, base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
        if exponent.is_number:
            size = _magnitude(exponent)
            if size is None or size > MAX_EXPONENT:
                raise self.fail(f"a constant exponent larger than {MAX_EXPONENT} in absolute value")
            if base.is_number and size > 0:
                b = _magnitude(base)
                if b is None or (b > 0 and size * abs(math.log10(b)) > _MAX_LOG10):
                    raise self.fail("a power of constants beyond double precision")
        return base**exponent

    def call(self, node: ast.Call, depth: int) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.refuse(node.func)
            raise self.fail("only named functions can be called")
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise self.fail(f"unknown function {fname!r}; allowed functions are "
                            f"{sorted(FUNCTIONS, key=str.lower)}")
        if node.keywords:
            raise self.fail(f"{fname}() takes positional arguments only")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(arg)
        func, lo, hi = FUNCTIONS[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} or {hi}")
            raise self.fail(f"{fname}() takes {want} argument{'s' if want != '1' else ''}, got {n}")
        if fname in ("where", "piecewise"):
            return self.piecewise(fname, node.args, depth)
        args = [self.expr(a, depth + 1) for a in node.args]
        return func(*args)

    def piecewise(self, fname: str, args: list[ast.AST], depth: int) -> sympy.Expr:
        if len(args) % 2 == 0:
            raise self.fail(f"{fname}() takes condition/value pairs and a final value "
                            f"(an odd number of arguments), got {len(args)}")
        pieces = [(self.expr(args[i + 1], depth + 1), self.condition(args[i], depth + 1))
                  for i in range(0, len(args) - 1, 2)]
        pieces.append((self.expr(args[-1], depth + 1), sympy.true))
        return sympy.Piecewise(*pieces)

    def condition(self, node: ast.AST, depth: int):
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Compare):
            terms = [self.expr(node.left, depth + 1)] + [self.expr(c, depth + 1) for c in node.comparators]
            parts = []
            for op, a, b in zip(node.ops, terms[:-1], terms[1:]):
                if type(op) not in _COMPARE:
                    sym = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
                           ast.In: "in", ast.NotIn: "not in"}.get(type(op), "?")
                    raise self.fail(f"the comparison {sym} is not allowed (allowed: < <= > >=)")
                parts.append(_COMPARE[type(op)](a, b))
            return sympy.And(*parts)
        if isinstance(node, ast.BoolOp):
            join = sympy.And if isinstance(node.op, ast.And) else sympy.Or
            return join(*(self.condition(v, depth + 1) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sympy.Not(self.condition(node.operand, depth + 1))
        raise self.fail("the condition of where(...)/piecewise(...) must be a comparison "
                        "(< <= > >=), possibly joined with and/or/not")


def _magnitude(value: sympy.Expr) -> float | None:
    """``|value|`` of a SymPy number as a float (``inf`` when too large, ``None`` when
    not a real number)."""
    if value.is_Integer:
        n = abs(int(value))
        return float(n) if n.bit_length() <= 1023 else math.inf
    try:
        z = complex(value.evalf(20))
    except (TypeError, ValueError, OverflowError):
        return None
    if z.imag != 0 or math.isnan(z.real):
        return None
    return abs(z.real)


def _parse_tree(text: object) -> tuple[str, ast.AST]:
    """Check the raw text and its syntax tree against the limits; return the tree's body."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression of {len(text)} characters; at most {MAX_LENGTH} are allowed")
    if not text.strip():
        raise ExpressionError("empty expression")
    if not text.isascii():
        bad = next(ch for ch in text if not ch.isascii())
        raise ExpressionError(f"expression {_short(text)}: non-ASCII character {bad!r} "
                              f"(U+{ord(bad):04X}); write names and operators in ASCII")
    if any(ch in text for ch in "'\"\\#"):
        raise ExpressionError(f"expression {_short(text)}: quotes (strings), backslashes and "
                              "# comments are not allowed")
    source = text.strip().replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        what = getattr(err, "msg", None) or type(err).__name__
        raise ExpressionError(f"cannot parse expression {_short(text)}: {what}") from None
    count = 0
    for _ in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression {_short(text)} has more than {MAX_NODES} syntax "
                                  "nodes; write it shorter or as a built-in potential/kernel")
    return source, tree.body


def _finite_constants(expr: sympy.Expr, builder: _Builder) -> None:
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise builder.fail(f"it is not finite ({expr})")
    if expr.has(sympy.I):
        raise builder.fail(f"it is not real ({expr})")
    for num in expr.atoms(sympy.Number):
        size = _magnitude(num)
        if size is None or size > 10**_MAX_LOG10:
            raise builder.fail("a constant beyond double precision")
    for sub in sympy.preorder_traversal(expr):  # constant calls and powers: acos(2), (-8)**(1/3)
        if isinstance(sub, (sympy.Function, sympy.Pow)) and not sub.free_symbols:
            size = _magnitude(sub)
            if size is None:
                raise builder.fail(f"it is not real ({sub} is not a real number)")
            if size > 10**_MAX_LOG10:
                raise builder.fail(f"a constant beyond double precision ({sub})")


def parse_expression(text: str, variables: Sequence[str] | None = None) -> sympy.Expr:
    """Parse ``text`` into a SymPy expression under the grammar of this module.

    Parameters
    ----------
    text : str
        The expression.
    variables : sequence of str, optional
        The names it may use (each becomes a real SymPy symbol). ``None`` accepts any
        ordinary identifier as a plain symbol (used to find which names a text uses).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ExpressionError
        On any text outside the grammar or the limits, with a one-line reason.

    Examples
    --------
    >>> parse_expression("x**4/4 - x^2/2", ["x"])
    x**4/4 - x**2/2
    """
    source, body = _parse_tree(text)
    names = None if variables is None else {v: sympy.Symbol(v, real=True) for v in variables}
    builder = _Builder(text.strip(), source, names)
    try:
        expr = builder.expr(body, 0)
    except RecursionError:
        raise builder.fail(f"nested deeper than {MAX_DEPTH} levels") from None
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError) as err:
        if isinstance(err, ExpressionError):
            raise
        raise builder.fail(f"cannot be built ({type(err).__name__}: {err})") from None
    if not isinstance(expr, sympy.Expr):
        raise builder.fail("it is not a number-valued expression")
    _finite_constants(expr, builder)
    return expr


def check_expression(text: str) -> None:
    """Raise :class:`ExpressionError` unless ``text`` is in the grammar (any names allowed)."""
    parse_expression(text, None)


def free_symbol_names(text: str) -> set[str]:
    """Names of the free symbols of ``text`` (functions and constants excluded)."""
    return {str(s) for s in parse_expression(text, None).free_symbols}


_MODULES = ["scipy", "numpy"]


def _derivative(expr: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
    """``d expr / d symbol``, almost everywhere: the Dirac masses of sign() and of the
    jumps of where()/piecewise() are dropped (they carry no value on cells or points)."""
    return sympy.diff(expr, symbol).replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))


class CompiledExpression:
    """A scalar expression in named variables, with its gradient.

    Parameters
    ----------
    text : str
        The expression, in the grammar of :mod:`ddsolve.model.expressions`.
    variables : sequence of str
        Names of the variables, in the order in which ``__call__`` receives them.
    parameters : dict, optional
        Numeric constants substituted before compilation.

    Examples
    --------
    >>> f = CompiledExpression("x**2 + y", ["x", "y"])
    >>> float(f(2.0, 1.0)), f.gradient(2.0, 1.0).tolist()
    (5.0, [4.0, 1.0])
    """

    def __init__(
        self,
        text: str,
        variables: Sequence[str],
        parameters: dict[str, float] | None = None,
    ) -> None:
        self.text = str(text)
        self.variables = tuple(variables)
        params = dict(parameters or {})
        expr = parse_expression(self.text, self.variables + tuple(k for k in params if k not in self.variables))
        if params:
            expr = expr.subs({sympy.Symbol(k, real=True): float(v) for k, v in params.items()})
        unknown = {str(s) for s in expr.free_symbols} - set(self.variables)
        if unknown:  # pragma: no cover - the parser admits only these names
            raise ExpressionError(f"expression {self.text!r} uses unknown symbols {sorted(unknown)}; "
                                  f"allowed variables are {list(self.variables)}")
        if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise ExpressionError(f"expression {self.text!r} is not finite ({expr})")
        self.expr = expr
        symbols = [sympy.Symbol(name, real=True) for name in self.variables]
        # scipy first: erf and erfc vectorise through scipy.special
        self._func = sympy.lambdify(symbols, expr, modules=_MODULES)
        self._grad = [sympy.lambdify(symbols, _derivative(expr, s), modules=_MODULES) for s in symbols]

    def __call__(self, *values: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        out = np.asarray(self._func(*values), dtype=float)
        return np.broadcast_to(out, shape).copy()

    def gradient(self, *values: np.ndarray) -> np.ndarray:
        """Partial derivatives, stacked along a new last axis."""
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        parts = [np.broadcast_to(np.asarray(g(*values), dtype=float), shape) for g in self._grad]
        return np.stack(parts, axis=-1)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.text!r}, variables={self.variables})"


def compile_expression(
    text: str, variables: Sequence[str], parameters: dict[str, float] | None = None
) -> CompiledExpression:
    """Parse ``text`` into a :class:`CompiledExpression` (see there)."""
    return CompiledExpression(text, variables, parameters)


def as_callable(f: Callable | str, variables: Sequence[str]) -> Callable:
    """Return ``f`` unchanged if callable, else compile it as an expression."""
    if callable(f):
        return f
    return compile_expression(f, variables)
