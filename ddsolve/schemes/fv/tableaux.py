r"""Butcher tableaux of the error-controlled implicit and IMEX integrators, by name.

All are singly diagonally implicit with an explicit first stage (ESDIRK), stiffly
accurate (:math:`b_j = a_{sj}`, so the step is the last stage, which the Newton solver
keeps positive) and L-stable, with an embedded solution :math:`\hat b` of one order less
for the local error estimate :math:`e = \Delta t\sum_j (b_j-\hat b_j)k_j`:

=========  =======  =====  ======================================================
name       order    stages source
=========  =======  =====  ======================================================
trbdf2     2 (3)    3      TR-BDF2, Bank et al. (IEEE Trans. CAD 4, 1985); embedded
                           pair of Hosea & Shampine (Appl. Numer. Math. 20, 1996)
esdirk3    3 (2)    4      ESDIRK3(2)4L[2]SA, Kennedy & Carpenter (Appl. Numer. Math.
                           44, 2003), the implicit part of ARK3(2)4L[2]SA
esdirk4    4 (3)    6      ESDIRK4(3)6L[2]SA, the implicit part of ARK4(3)6L[2]SA (ibid.)
ark3       3 (2)    4      ARK3(2)4L[2]SA: esdirk3 with its explicit partner (IMEX)
ark4       4 (3)    6      ARK4(3)6L[2]SA: esdirk4 with its explicit partner (IMEX)
=========  =======  =====  ======================================================

For the IMEX pairs the explicit and implicit parts share :math:`b`, :math:`\hat b` and
:math:`c`, so the pair has the stated order for :math:`\dot y = f_E(y) + f_I(y)` (the
coupling conditions hold; :func:`order_conditions` checks them).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["Tableau", "TABLEAUX", "get_tableau", "order_conditions"]


@dataclass(frozen=True)
class Tableau:
    """An (additive) ESDIRK tableau; ``AE`` is ``None`` for a purely implicit method."""

    name: str
    order: int
    embedded_order: int
    AI: np.ndarray
    b: np.ndarray
    bhat: np.ndarray
    AE: np.ndarray | None = None
    doc: str = ""

    @property
    def c(self) -> np.ndarray:
        return self.AI.sum(axis=1)

    @property
    def stages(self) -> int:
        return self.b.size

    @property
    def imex(self) -> bool:
        return self.AE is not None

    def packed(self) -> tuple:
        """``(AI, AE, b, bhat, c, k)`` for compiled code (``AE`` zero when not IMEX;
        ``k = embedded_order + 1`` is the exponent of the step-size controller)."""
        AE = np.zeros_like(self.AI) if self.AE is None else self.AE
        return (np.ascontiguousarray(self.AI), np.ascontiguousarray(AE), self.b.copy(),
                self.bhat.copy(), self.c.copy(), float(min(self.order, self.embedded_order) + 1))


def _f(x) -> float:
    return float(Fraction(x)) if isinstance(x, str) else float(x)


def _lower(rows, diag: float) -> np.ndarray:
    """Square matrix from the strictly lower rows (row i has i entries) and the diagonal;
    the first stage is explicit."""
    s = len(rows)
    A = np.zeros((s, s))
    for i, row in enumerate(rows):
        A[i, :len(row)] = [_f(v) for v in row]
        if i > 0 and diag is not None:
            A[i, i] = diag
    return A


# --- TR-BDF2 -----------------------------------------------------------------------
_g = 2.0 - np.sqrt(2.0)
_d, _w = _g / 2.0, np.sqrt(2.0) / 4.0
_TRBDF2 = Tableau(
    "trbdf2", 2, 3, _lower([[], [_d], [_w, _w]], _d), np.array([_w, _w, _d]),
    np.array([(1 - _w) / 3, (3 * _w + 1) / 3, _d / 3]),
    doc="TR-BDF2 (trapezoidal stage, then BDF2), L-stable, 2nd order, 3rd-order embedded pair")

# --- ARK3(2)4L[2]SA ----------------------------------------------------------------
_g3 = _f("1767732205903/4055673282236")
_b3 = np.array([_f("1471266399579/7840856788654"), _f("-4482444167858/7529755066697"),
                _f("11266239266428/11593286722821"), _g3])
_bh3 = np.array([_f("2756255671327/12835298489170"), _f("-10771552573575/22201958757719"),
                 _f("9247589265047/10645013368117"), _f("2193209047091/5459859503100")])
_AI3 = _lower([[], [_g3], ["2746238789719/10658868560708", "-640167445237/6845629431997"],
               list(_b3[:3])], _g3)
_AE3 = _lower([[], ["1767732205903/2027836641118"],
               ["5535828885825/10492691773637", "788022342437/10882634858940"],
               ["6485989280629/16251701735622", "-4246266847089/9704473918619",
                "10755448449292/10357097424841"]], None)

# --- ARK4(3)6L[2]SA ----------------------------------------------------------------
_b4 = np.array([_f("82889/524892"), 0.0, _f("15625/83664"), _f("69875/102672"),
                _f("-2260/8211"), 0.25])
_bh4 = np.array([_f("4586570599/29645900160"), 0.0, _f("178811875/945068544"),
                 _f("814220225/1159782912"), _f("-3700637/11593932"), _f("61727/225920")])
_AI4 = _lower([[], [0.25], ["8611/62500", "-1743/31250"],
               ["5012029/34652500", "-654441/2922500", "174375/388108"],
               ["15267082809/155376265600", "-71443401/120774400", "730878875/902184768",
                "2285395/8070912"], list(_b4[:5])], 0.25)
_AE4 = _lower([[], [0.5], ["13861/62500", "6889/62500"],
               ["-116923316275/2393684061468", "-2731218467317/15368042101831",
                "9408046702089/11113171139209"],
               ["-451086348788/2902428689909", "-2682348792572/7519795681897",
                "12662868775082/11960479115383", "3355817975965/11060851509271"],
               ["647845179188/3216320057751", "73281519250/8382639484533",
                "552539513391/3454668386233", "3354512671639/8306763924573", "4040/17871"]], None)

TABLEAUX: dict[str, Tableau] = {t.name: t for t in (
    _TRBDF2,
    Tableau("esdirk3", 3, 2, _AI3, _b3, _bh3, doc="ESDIRK3(2)4L[2]SA (Kennedy & Carpenter 2003)"),
    Tableau("esdirk4", 4, 3, _AI4, _b4, _bh4, doc="ESDIRK4(3)6L[2]SA (Kennedy & Carpenter 2003)"),
    Tableau("ark3", 3, 2, _AI3, _b3, _bh3, _AE3,
            doc="ARK3(2)4L[2]SA IMEX: interaction potential explicit, transport implicit (semi-implicit)"),
    Tableau("ark4", 4, 3, _AI4, _b4, _bh4, _AE4,
            doc="ARK4(3)6L[2]SA IMEX: interaction potential explicit, transport implicit (semi-implicit)"),
)}
"""Every integrator tableau, by name."""


def get_tableau(name: str) -> Tableau:
    try:
        return TABLEAUX[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; one of {', '.join(TABLEAUX)}") from None


def order_conditions(b: np.ndarray, A: np.ndarray, c: np.ndarray, order: int) -> float:
    """Largest defect of the classical Runge–Kutta order conditions up to ``order`` (4 at
    most). For an additive (IMEX) pair, check each part on its own; the coupling conditions
    are checked in the test suite by mixing the two parts' ``A`` matrices."""
    conds = [b.sum() - 1.0]
    if order >= 2:
        conds.append(b @ c - 1 / 2)
    if order >= 3:
        conds += [b @ c**2 - 1 / 3, b @ A @ c - 1 / 6]
    if order >= 4:
        conds += [b @ c**3 - 1 / 4, b @ (c * (A @ c)) - 1 / 8, b @ A @ c**2 - 1 / 12,
                  b @ A @ A @ c - 1 / 24]
    return float(np.max(np.abs(conds)))
