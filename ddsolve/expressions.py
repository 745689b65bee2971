"""Symbolic expressions for potentials and kernels given as text.

Users write ``V`` or ``U`` as strings in the config (``"x**4/4 - x**2/2"``,
``"exp(-(x - y)**2)"``). They are parsed once with SymPy, differentiated symbolically
and compiled to vectorised NumPy functions, so the same text drives the grid solver
(values on cells) and, later, particle dynamics (gradients at points).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy

__all__ = ["ExpressionError", "CompiledExpression", "compile_expression"]

_ALLOWED_FUNCTIONS = {
    name: getattr(sympy, name)
    for name in (
        "exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "atan",
        "Abs", "sign", "Max", "Min", "erf", "pi", "E",
    )
}
_ALLOWED_FUNCTIONS["abs"] = sympy.Abs


class ExpressionError(ValueError):
    """Raised when an expression cannot be parsed or uses unknown symbols."""


class CompiledExpression:
    """A scalar expression in named variables, with its gradient.

    Parameters
    ----------
    text : str
        The expression, in Python/SymPy syntax.
    variables : sequence of str
        Names of the variables, in the order in which ``__call__`` receives them.
    parameters : dict, optional
        Numeric constants substituted before compilation.
    """

    def __init__(
        self,
        text: str,
        variables: Sequence[str],
        parameters: dict[str, float] | None = None,
    ) -> None:
        self.text = str(text)
        self.variables = tuple(variables)
        symbols = {name: sympy.Symbol(name, real=True) for name in self.variables}
        local = dict(_ALLOWED_FUNCTIONS)
        local.update(symbols)
        try:
            expr = sympy.sympify(self.text, locals=local)
        except (sympy.SympifyError, SyntaxError, TypeError) as err:
            raise ExpressionError(f"cannot parse expression {self.text!r}: {err}") from None
        if parameters:
            expr = expr.subs({sympy.Symbol(k, real=True): float(v) for k, v in parameters.items()})
            expr = expr.subs({sympy.Symbol(k): float(v) for k, v in parameters.items()})
        unknown = {str(s) for s in expr.free_symbols} - set(self.variables)
        if unknown:
            raise ExpressionError(
                f"expression {self.text!r} uses unknown symbols {sorted(unknown)}; "
                f"allowed variables are {list(self.variables)}"
            )
        if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise ExpressionError(f"expression {self.text!r} is not finite ({expr})")
        self.expr = expr
        args = [symbols[name] for name in self.variables]
        self._func = sympy.lambdify(args, expr, modules="numpy")
        self._grad = [sympy.lambdify(args, sympy.diff(expr, s), modules="numpy") for s in args]

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


def free_symbol_names(text: str) -> set[str]:
    """Names of the free symbols of ``text`` (functions such as ``exp`` excluded)."""
    try:
        expr = sympy.sympify(str(text), locals=dict(_ALLOWED_FUNCTIONS))
    except (sympy.SympifyError, SyntaxError, TypeError) as err:
        raise ExpressionError(f"cannot parse expression {text!r}: {err}") from None
    return {str(s) for s in expr.free_symbols}


def as_callable(f: Callable | str, variables: Sequence[str]) -> Callable:
    """Return ``f`` unchanged if callable, else compile it as an expression."""
    if callable(f):
        return f
    return compile_expression(f, variables)
