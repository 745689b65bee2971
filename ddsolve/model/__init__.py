"""The continuous problem: the energy of a measure and its time schedule.

    E[ρ] = ∫ V dρ + ½ ∬ U dρ dρ,    F[ρ] = E[ρ] + β⁻¹ ∫ ρ log(ρ/m),    Ψ[ρ] = δE/δρ

:class:`Model` holds the potential ``V`` (:mod:`.potentials`), the symmetric kernel ``U``
(:mod:`.kernels`), the inverse temperature and the schedule ξ(t) (:mod:`.schedule`).
Potentials and kernels given as text are parsed safely by :mod:`.expressions`. Nothing
here knows about grids or particles.
"""

from ddsolve.model.base import Model
from ddsolve.model.expressions import CompiledExpression, ExpressionError, compile_expression
from ddsolve.model.kernels import (
                                   KERNELS,
                                   AttractiveRepulsiveKernel,
                                   CosineKernel,
                                   GaussianKernel,
                                   Kernel,
                                   QuadraticKernel,
                                   TranslationInvariantKernel,
                                   make_kernel,
)
from ddsolve.model.potentials import (
                                   POTENTIALS,
                                   DoubleWellPotential,
                                   MullerBrownPotential,
                                   Potential,
                                   QuadraticPotential,
                                   make_potential,
)
from ddsolve.model.schedule import Schedule

__all__ = [
    "Model", "CompiledExpression", "ExpressionError", "compile_expression", "KERNELS", "Kernel",
    "TranslationInvariantKernel", "QuadraticKernel", "CosineKernel", "AttractiveRepulsiveKernel",
    "GaussianKernel", "make_kernel", "POTENTIALS", "Potential", "QuadraticPotential",
    "DoubleWellPotential", "MullerBrownPotential", "make_potential", "Schedule",
]
