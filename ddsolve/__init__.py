"""ddsolve — reference solver for distributional dynamics (mean-field PDEs of SGD on
wide two-layer networks, and McKean–Vlasov equations in general)."""

from ddsolve.grid.coordinates import Axis, Coordinates, cartesian, radial, with_charge
from ddsolve.grid.grid_model import GridModel
from ddsolve.model.base import Model
from ddsolve.model.kernels import make_kernel
from ddsolve.model.potentials import make_potential
from ddsolve.model.schedule import Schedule
from ddsolve.schemes.evolve import evolve
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SolverFailure, SSPRKSolver

__version__ = "0.1.0"

__all__ = [
    "Axis", "Coordinates", "cartesian", "radial", "with_charge", "GridModel",
    "DistributionalDynamicsPDE", "make_kernel", "Model", "make_potential", "Schedule",
    "SolverFailure", "SSPRKSolver", "evolve", "__version__",
]
