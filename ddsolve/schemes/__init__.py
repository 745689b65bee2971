"""Time discretisations of the density equation, registered by name
(:mod:`ddsolve.schemes.registry`; importing this package registers the built-in
finite-volume and JKO steppers), and :func:`~ddsolve.schemes.evolve.evolve`."""

from ddsolve.schemes import jko as _jko  # noqa: F401 - registers ("jko", True)
from ddsolve.schemes.fv import steppers as _fv_steppers  # noqa: F401 - registers ("fv", *)
from ddsolve.schemes.registry import STEPPERS, get_stepper, make_stepper, register_stepper, scheme_names

__all__ = ["STEPPERS", "get_stepper", "make_stepper", "register_stepper", "scheme_names"]
