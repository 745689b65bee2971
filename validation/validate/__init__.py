"""Particles against the PDE, ``ddsolve validate`` (:mod:`.study`, :mod:`.config`,
:mod:`.report`, :mod:`.command`)."""

from .study import Validation, validate

__all__ = ["validate", "Validation"]
