"""Convergence studies of a config, ``ddsolve converge`` (:mod:`.study`, :mod:`.exact`,
:mod:`.report`, :mod:`.command`)."""

from .exact import exact_solution
from .study import Study, converge

__all__ = ["converge", "Study", "exact_solution"]
