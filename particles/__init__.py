"""Finite-N particle dynamics that validate the continuum solutions of :mod:`ddsolve`.

Every dynamics runs the *same model* as the PDE (same :math:`V, U, \\beta, \\xi` and
ddsolve's time convention, :mod:`ddsolve.model.base`) and implements
:class:`~particles.base.Dynamics`, so ``ddsolve particles CONFIG.toml``
(:mod:`particles.runner`) writes the same kind of output directory as ``ddsolve run``.

=========================== =============================================================
module                      what it holds
=========================== =============================================================
:mod:`particles.meanfield`  McKean–Vlasov particles of any ddsolve ``Model``
                            (Euler–Maruyama, Heun; Cartesian, periodic, radial as radii or
                            full vectors in R^d)
:mod:`particles.forces`     the interaction force: O(N) mean (Curie–Weiss, Kuramoto),
                            O(N²) compiled pairs, particle–mesh FFT, generic kernels
:mod:`particles.sgd`        online / mini-batch / noisy / dropout SGD of the real two-layer
                            network, full vectors w_i ∈ R^d
:mod:`particles.risk`       exact population risk of a finite network on Gaussian data laws
:mod:`particles.momentum`   Nesterov, gradient-restarted Nesterov, MaSS
:mod:`particles.hmm`        MF-Hom-SGLD multiscale agents, Gibbs-smoothed potentials;
                            the Kantas–Parpas–Pavliotis agents' model
:mod:`particles.losses`     training losses of whole networks as potentials: agents that
                            are networks, for the hmm and meanfield modules
:mod:`particles.charges`    Rotskoff–Vanden-Eijnden RBF units with charges, 3-spin target
:mod:`particles.datasets`   sklearn's 8×8 digits, ``.npz`` arrays, empirical data laws
:mod:`particles.config`     the ``[particles]`` config section
:mod:`particles.runner`     one run: snapshots, diagnostics, summary, figures
:mod:`particles.storage`    ``particles.h5``
=========================== =============================================================

``particles`` imports :mod:`ddsolve`, never the other way round (the ``ddsolve
particles`` command imports this package lazily).
"""

from .base import Dynamics, ParticleFailure, ParticleState
from .meanfield import MeanFieldParticles

__all__ = ["Dynamics", "ParticleFailure", "ParticleState", "MeanFieldParticles"]
