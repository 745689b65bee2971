"""ddsolve — reference solver for distributional dynamics (mean-field PDEs of SGD on
wide two-layer networks, and McKean–Vlasov equations in general)."""

from .coordinates import Axis, Coordinates, cartesian, radial, with_charge
from .discretization import GridModel
from .fv import DistributionalDynamicsPDE
from .kernels import make_kernel
from .model import Model
from .potentials import make_potential
from .schedule import Schedule
from .solvers import SolverFailure, SSPRKSolver
from .evolve import evolve

__version__ = "0.1.0"

__all__ = [
    "Axis", "Coordinates", "cartesian", "radial", "with_charge", "GridModel",
    "DistributionalDynamicsPDE", "make_kernel", "Model", "make_potential", "Schedule",
    "SolverFailure", "SSPRKSolver", "evolve", "__version__",
]
